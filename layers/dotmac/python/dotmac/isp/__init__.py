"""ISP Framework: subscribers, services, IPAM, network, field work, tickets, subscriber billing."""

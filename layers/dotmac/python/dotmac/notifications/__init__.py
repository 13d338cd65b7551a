"""Notifications: messages to users, delivered from the `notifications` queue."""

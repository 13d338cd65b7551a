"""Resource definitions: the single source of truth for AWS (CloudFormation) and the local cloud."""

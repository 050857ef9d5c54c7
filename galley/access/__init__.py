"""Access: role definitions and assignments, groups, and the grants every request is checked against."""

"""Store: the database, tickets, conversations and the audit log."""

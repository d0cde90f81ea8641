"""Mail adapters: parsing and composing messages, IMAP and SMTP."""

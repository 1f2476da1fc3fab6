"""Proactive messages (主动推送): the gate every one passes, and service notices
(docs/outreach.md)."""

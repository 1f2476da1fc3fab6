"""Tickets (工单): the model, the pure rules, and each shop's TicketDesk actor."""

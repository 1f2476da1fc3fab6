"""The domain: shops, agents, conversations, routing, bot, customers, tickets."""

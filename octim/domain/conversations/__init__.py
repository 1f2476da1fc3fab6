"""Conversations: one buyer with one shop, from the first message to close.

- :mod:`.model`: states, message kinds and their validation, store keys, and the typed
  records (:class:`~.model.ConversationMeta`, :class:`~.model.StoredMessage`);
- :mod:`.messages`: the actor messages (commands) a conversation handles;
- :mod:`.actor`: the ConversationActor, the one owner and writer of a conversation;
- :mod:`.bot`: the bot's turns inside a conversation (answer, suggest, hand over).

This module imports none of them: the routing dispatcher imports the messages, and
the actor imports the dispatcher.
"""

"""The knowledge base (知识库) and its matcher; the bot builds on them."""

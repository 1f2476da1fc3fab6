"""Channel adapters: programs that speak another service's protocol on one side and
OctIM's generic channel API on the other (docs/channels.md). ``wechat`` is the reference
adapter; ``wechat_fake`` is a local stand-in for WeChat's servers, for tests and demos."""

"""The actor runtime: trio-native actors, the Directory, and the bridge to pykka threads."""

from octim.actors.actor import (
    Actor,
    ActorKind,
    ActorRef,
    Address,
    SupervisionPolicy,
)
from octim.actors.bridge import Reply, deliver_many
from octim.actors.directory import Directory, open_directory
from octim.actors.messages import Message, freeze, from_wire, message_types, record, thaw, to_wire

__all__ = [
    "Actor",
    "ActorKind",
    "ActorRef",
    "Address",
    "Directory",
    "Message",
    "Reply",
    "SupervisionPolicy",
    "deliver_many",
    "freeze",
    "from_wire",
    "message_types",
    "open_directory",
    "record",
    "thaw",
    "to_wire",
]

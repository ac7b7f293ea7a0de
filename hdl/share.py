"""One block's ports, used by several others in turn.

The accelerator top's commands take turns at the blocks they share: the request's bytes, the
size multiplier, the address walk, the layer buffer's ports, the GLU and the response. Each
user holds a port of its own with the shared block's members, flipped, and drives its
outputs only while it is the user (0 otherwise): :func:`share` then gives the block the OR of
what its users drive, and every user what the block answers. No multiplexer of users' values
is kept by hand, and a user that drives a port out of turn corrupts what the tests check.
"""

from functools import reduce
from operator import or_

from amaranth.hdl import Value
from amaranth.lib import wiring


__all__ = ["share"]


def _member(interface, path):
    for name in path:
        interface = interface[name] if isinstance(name, int) else getattr(interface, name)
    return interface


def share(m, resource, *users):
    """Connect ``users`` (interfaces of one signature) to ``resource``, one user at a time.

    Each member a user drives (``Out`` in its signature) drives ``resource``'s member of the
    same path with the OR of every user's; each member a user takes (``In``) is ``resource``'s,
    for every user. ``resource`` is any object with those members (a component, an interface,
    a memory port), and may have more.
    """
    if not users:
        raise ValueError("share() needs at least one user")
    signature = users[0].signature
    for user in users[1:]:
        if user.signature.members != signature.members:
            raise TypeError(f"users of one resource must have one signature; {user!r} has "
                            f"{user.signature!r}, not {signature!r}")
    for path, member, _ in signature.flatten(users[0]):
        target = _member(resource, path)
        values = [_member(user, path) for user in users]
        if member.flow == wiring.Flow.Out:
            m.d.comb += target.eq(reduce(or_, (Value.cast(value) for value in values)))
        else:
            m.d.comb += [value.eq(target) for value in values]

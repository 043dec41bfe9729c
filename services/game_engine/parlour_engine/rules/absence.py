"""Generic absence rules a game plugin calls into (kept apart from `_core` so plugins need
not import the dispatcher)."""

from __future__ import annotations

from parlour_engine.rules.context import Ctx, Rejected
from parlour_engine.rules.state import AutoPlayer
from parlour_protocol.v1 import ErrorCode
from parlour_protocol.v1 import rooms as room_msgs
from parlour_protocol.v1.rooms import RoomStatus


def enable_auto_play(ctx: Ctx) -> None:
    """The caller hands their own turns to the server until they rejoin. The plugin then
    plays for them if it is their turn."""
    st = ctx.state
    uid = ctx.actor_id
    if st.status is not RoomStatus.IN_PROGRESS:
        raise Rejected(ErrorCode.GAME_NOT_IN_PROGRESS)
    player = st.player(uid)
    if player is None:
        raise Rejected(ErrorCode.NOT_A_PLAYER)
    if st.auto_player(uid) is not None:
        raise Rejected(ErrorCode.ALREADY_AUTO_PLAY)
    st.auto_players = (*st.auto_players, AutoPlayer(user_id=uid, reason="voluntary"))
    ctx.room(
        room_msgs.PlayerAutoEnabled(
            room_id=st.room_id, user_id=uid, username=player.username, reason="voluntary"
        )
    )

"""Chat rules: a room's three channels (who may write and read each), its chat history, the
per-viewer mutes, and direct messages between two users (which touch no room).

Chat history is answered here rather than with the other read-only answers (`queries`):
it shares the channel access rules and the mutes with live chat, so what a member sees of
a channel is decided in one module.
"""

from __future__ import annotations

import re
from datetime import datetime

from parlour_engine.rules.context import (
    Ctx,
    Handlers,
    Rejected,
    derive_id,
    error_emit,
    reply_audience,
)
from parlour_engine.rules.state import RoomState
from parlour_engine.rules.types import ChatAppend, ChatRead, Emit
from parlour_engine.rules.views import known_username
from parlour_protocol.v1 import Audience, AudienceKind, CommandEnvelope, ErrorCode
from parlour_protocol.v1 import chat as chat_msgs
from parlour_protocol.v1.limits import MAX_MUTED_PER_USER
from parlour_protocol.v1.rooms import RoomStatus

HANDLERS = Handlers()

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_chat(content: str) -> str:
    """Strip C0/C1 control characters except newline and tab; blank content becomes ''."""
    cleaned = _CONTROL.sub("", content)
    return cleaned if cleaned.strip() else ""


# --- room chat ----------------------------------------------------------------------------


@HANDLERS.on(chat_msgs.SendChat)
def _send_chat(ctx: Ctx, payload: chat_msgs.SendChat) -> None:
    st = ctx.state
    uid = ctx.actor_id
    channel = payload.channel
    if channel is chat_msgs.ChatChannel.LOBBY:
        if not st.is_member(uid):
            raise Rejected(ErrorCode.CHANNEL_ACCESS_DENIED)
        if st.status is not RoomStatus.WAITING or not st.lobby_chat_enabled:
            raise Rejected(ErrorCode.CHAT_DISABLED)
    elif channel is chat_msgs.ChatChannel.PLAYERS:
        if st.player(uid) is None:
            raise Rejected(ErrorCode.CHANNEL_ACCESS_DENIED)
        if st.status is not RoomStatus.IN_PROGRESS:
            raise Rejected(ErrorCode.CHAT_DISABLED)
    else:
        if st.spectator(uid) is None:
            raise Rejected(ErrorCode.CHANNEL_ACCESS_DENIED)
        if st.status is not RoomStatus.IN_PROGRESS:
            raise Rejected(ErrorCode.CHAT_DISABLED)
    content = clean_chat(payload.content)
    if not content:
        raise Rejected(ErrorCode.INVALID_MESSAGE, "message is empty")
    message_id = ctx.mint_id("chat")
    item = chat_msgs.ChatMessageItem(
        message_id=message_id,
        user_id=uid,
        username=ctx.actor_name,
        content=content,
        timestamp=ctx.now,
    )
    event = chat_msgs.ChatMessage(
        room_id=st.room_id,
        channel=channel,
        message_id=message_id,
        user_id=uid,
        username=ctx.actor_name,
        content=content,
        timestamp=ctx.now,
    )
    _deliver_chat(ctx, event)
    # stored even when no seq moved (spectators channel, muted sender), so the store
    # records it once
    ctx.chat.append(ChatAppend(channel, item))


def _deliver_chat(ctx: Ctx, event: chat_msgs.ChatMessage) -> None:
    """Live chat honours mutes as chat history does (`ChatRead.hidden_user_ids`): a member
    who muted the sender does not receive the message.

    Lobby and players channel messages go to the whole room with a `seq` (ROOM) and
    spectators channel messages to the spectators (SPECTATORS). When a would-be recipient
    muted the sender, the message goes instead to the others, listed (USERS, or USER for
    one), without a `seq`: a room event that skipped a member would open a seq gap on that
    member's socket, which clients answer with a resync, and the replay would never fill it.
    Such a message is therefore not in the room's replay stream; chat history still has it."""
    st = ctx.state
    muters = {viewer for viewer, muted in st.mutes.items() if event.user_id in muted}
    spectators_only = event.channel is chat_msgs.ChatChannel.SPECTATORS
    recipients = [s.user_id for s in st.spectators] if spectators_only else st.member_ids()
    shown = [uid for uid in recipients if uid not in muters]
    if len(shown) < len(recipients):
        ctx.users(shown, event)
    elif spectators_only:
        ctx.spectators(event)
    else:
        ctx.room(event)


def can_read_channel(st: RoomState, uid: str, channel: chat_msgs.ChatChannel) -> bool:
    """Whether `uid` may read `channel`'s history: members read lobby and players chat,
    spectators read theirs."""
    if channel is chat_msgs.ChatChannel.LOBBY:
        return st.is_member(uid)
    if channel is chat_msgs.ChatChannel.PLAYERS:
        return st.is_member(uid)
    return st.spectator(uid) is not None


@HANDLERS.on(chat_msgs.GetChatHistory)
def _get_chat_history(ctx: Ctx, payload: chat_msgs.GetChatHistory) -> None:
    st = ctx.state
    uid = ctx.actor_id
    if not can_read_channel(st, uid, payload.channel):
        raise Rejected(ErrorCode.CHANNEL_ACCESS_DENIED)
    ctx.read_only = True
    ctx.chat_read = ChatRead(
        room_id=st.room_id,
        channel=payload.channel,
        limit=payload.limit,
        hidden_user_ids=frozenset(st.mutes.get(uid, ())),
        audience=reply_audience(ctx.command),
    )


# --- mutes --------------------------------------------------------------------------------


@HANDLERS.on(chat_msgs.MuteUser, chat_msgs.UnmuteUser)
def _mute_or_unmute(ctx: Ctx, payload: chat_msgs.MuteUser | chat_msgs.UnmuteUser) -> None:
    st = ctx.state
    uid = ctx.actor_id
    target = payload.target_user_id
    if not st.is_member(uid):
        raise Rejected(ErrorCode.NOT_IN_ROOM)
    current = st.mutes.get(uid, ())
    muting = isinstance(payload, chat_msgs.MuteUser)
    if muting and target not in current:
        if len(current) >= MAX_MUTED_PER_USER:
            raise Rejected(
                ErrorCode.LIMIT_REACHED,
                f"One member may mute at most {MAX_MUTED_PER_USER} users per room "
                "(MAX_MUTED_PER_USER); unmute someone first.",
            )
        st.mutes = {**st.mutes, uid: (*current, target)}
    elif not muting and target in current:
        remaining = tuple(t for t in current if t != target)
        st.mutes = {k: v for k, v in st.mutes.items() if k != uid}
        if remaining:
            st.mutes[uid] = remaining
    else:
        ctx.read_only = True
    name = known_username(st, target)
    if muting:
        ctx.user(
            uid,
            chat_msgs.UserMuted(room_id=st.room_id, target_user_id=target, target_username=name),
        )
    else:
        ctx.user(
            uid,
            chat_msgs.UserUnmuted(room_id=st.room_id, target_user_id=target, target_username=name),
        )


# --- direct messages ----------------------------------------------------------------------


def direct_message(command: CommandEnvelope, now: datetime) -> tuple[Emit, ...]:
    """`chat.command.send_message` -> `chat.event.message_received` to [recipient, sender]
    (USERS audience), or a `cannot_message_self` error to the sender's connection."""
    payload = command.payload
    sender = command.actor
    if not isinstance(payload, chat_msgs.SendDirectMessage):
        return (error_emit(command, now, ErrorCode.INVALID_MESSAGE, "not a direct message"),)
    if payload.recipient_id == sender.user_id:
        return (error_emit(command, now, ErrorCode.CANNOT_MESSAGE_SELF),)
    content = clean_chat(payload.content)
    if not content:
        return (error_emit(command, now, ErrorCode.INVALID_MESSAGE, "message is empty"),)
    message = chat_msgs.DirectMessageReceived(
        message_id=str(derive_id(command.msg_id, "direct_message")),
        sender_id=sender.user_id,
        sender_name=sender.username,
        recipient_id=payload.recipient_id,
        content=content,
        sent_at=now,
    )
    audience = Audience(kind=AudienceKind.USERS, user_ids=[payload.recipient_id, sender.user_id])
    return (Emit(audience, message),)

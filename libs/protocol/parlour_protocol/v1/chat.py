"""Room chat (three channels per room) and direct messages between users."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from parlour_protocol.v1 import limits
from parlour_protocol.v1.base import (
    WHOLE_ROOM,
    ChatContent,
    ClientCommand,
    Id,
    RoomCommand,
    RoomId,
    ServerEvent,
    TargetedRoomCommand,
    UserId,
    Username,
    WireModel,
)


class ChatChannel(StrEnum):
    """`lobby`: everyone in a waiting room. `players`: players write while the game runs,
    everyone in the room reads. `spectators`: spectators only."""

    LOBBY = "lobby"
    PLAYERS = "players"
    SPECTATORS = "spectators"


class ChatMessageItem(WireModel):
    message_id: Id
    user_id: UserId
    username: Username
    content: str
    is_system: bool = Field(default=False, description="written by the server, not a user")
    timestamp: datetime


# --- client -> server ---------------------------------------------------------------------


class SendChat(RoomCommand):
    type: Literal["games.command.send_chat"] = "games.command.send_chat"
    doc_answer: ClassVar[str] = "`chat_message`"
    channel: ChatChannel
    content: ChatContent


class GetChatHistory(RoomCommand):
    type: Literal["games.command.get_chat_history"] = "games.command.get_chat_history"
    doc_answer: ClassVar[str] = "`chat_history`"
    channel: ChatChannel
    limit: int = Field(
        default=limits.CHAT_HISTORY_DEFAULT_LIMIT, ge=1, le=limits.CHAT_HISTORY_MAX_LIMIT
    )
    before: Id | None = Field(
        default=None,
        description="a `message_id` from an earlier chat_history: only messages older than "
        "it (the next page back); null = the newest",
    )


class MuteUser(TargetedRoomCommand):
    """Hide a user's chat from the caller, live and in chat history (the mute is per
    viewer)."""

    type: Literal["games.command.mute_user"] = "games.command.mute_user"
    doc_answer: ClassVar[str] = "`user_muted` to the caller"


class UnmuteUser(TargetedRoomCommand):
    type: Literal["games.command.unmute_user"] = "games.command.unmute_user"
    doc_answer: ClassVar[str] = "`user_unmuted` to the caller"


class SendDirectMessage(ClientCommand):
    """A private message to another user; it reaches every socket of the recipient."""

    type: Literal["chat.command.send_message"] = "chat.command.send_message"
    doc_answer: ClassVar[str] = "`chat.event.message_received` to recipient and sender"
    recipient_id: UserId
    content: ChatContent


# --- server -> client ---------------------------------------------------------------------


class ChatMessage(ServerEvent):
    """A room chat message. Lobby and players channel messages go to the whole room (and take
    a `seq`); spectators channel messages go to the spectators only. Members who muted the
    sender do not receive it: the others then get it as a listed audience, without a `seq`
    (it is in chat history, not in the rejoin replay)."""

    type: Literal["games.event.chat_message"] = "games.event.chat_message"
    doc_audience: ClassVar[str] = (
        "channel `lobby` or `players`: " + WHOLE_ROOM + "; channel "
        "`spectators`: the spectators only - `seq` null; when members muted the sender: "
        "the others (audience `users`) - `seq` null"
    )
    room_id: RoomId
    channel: ChatChannel
    message_id: Id
    user_id: UserId
    username: Username
    content: str
    is_system: bool = Field(default=False, description="written by the server, not a user")
    timestamp: datetime


class ChatHistory(ServerEvent):
    """The newest `limit` messages of a channel (older than `before`, when given), oldest
    first, to the requester. Messages from users the requester muted are left out. The answer
    never exceeds EVENT_MAX_BYTES: it is filled newest first and stops before the budget;
    `has_more` then says older messages are kept (ask again with `before` = the first
    message's id)."""

    type: Literal["games.event.chat_history"] = "games.event.chat_history"
    doc_audience: ClassVar[str] = (
        "the requesting socket; messages of users the requester muted are left out - `seq` null"
    )
    room_id: RoomId
    channel: ChatChannel
    messages: list[ChatMessageItem]
    has_more: bool = Field(
        default=False, description="older messages are kept than the ones in `messages`"
    )


class UserMuted(ServerEvent):
    type: Literal["games.event.user_muted"] = "games.event.user_muted"
    doc_audience: ClassVar[str] = "the muting user only - `seq` null"
    room_id: RoomId
    target_user_id: UserId
    target_username: Username


class UserUnmuted(ServerEvent):
    type: Literal["games.event.user_unmuted"] = "games.event.user_unmuted"
    doc_audience: ClassVar[str] = "the unmuting user only - `seq` null"
    room_id: RoomId
    target_user_id: UserId
    target_username: Username


class DirectMessageReceived(ServerEvent):
    """To every socket of the recipient and of the sender."""

    type: Literal["chat.event.message_received"] = "chat.event.message_received"
    doc_audience: ClassVar[str] = "every socket of the recipient and of the sender - `seq` null"
    message_id: Id
    sender_id: UserId
    sender_name: Username
    recipient_id: UserId
    content: str
    sent_at: datetime


CLIENT_COMMANDS: tuple[type[ClientCommand], ...] = (
    SendChat,
    GetChatHistory,
    MuteUser,
    UnmuteUser,
    SendDirectMessage,
)
SERVER_EVENTS: tuple[type[ServerEvent], ...] = (
    ChatMessage,
    ChatHistory,
    UserMuted,
    UserUnmuted,
    DirectMessageReceived,
)

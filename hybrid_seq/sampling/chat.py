"""The instruction-tuned chat format (Gemma / RecurrentGemma-IT turn markers)."""

from __future__ import annotations

from collections.abc import Sequence

#: Opens a turn: `<start_of_turn>` followed by the role and a newline.
START_OF_TURN = "<start_of_turn>"
#: Closes a turn; chat sampling also stops at it.
END_OF_TURN = "<end_of_turn>"

#: Accepted roles and the name written into the prompt (Gemma calls the assistant "model").
_ROLES = {"user": "user", "model": "model", "assistant": "model"}

Message = tuple[str, str]


def format_chat(messages: str | Sequence[Message], *, add_generation_prompt: bool = True) -> str:
    """Render a conversation as `<start_of_turn>{role}\\n{text}<end_of_turn>\\n` turns.

    `messages` is a single user string or a list of `(role, text)` pairs with role
    `"user"` or `"model"` (`"assistant"` is an alias). With `add_generation_prompt` the
    result ends with an open `<start_of_turn>model\\n` turn for the model to complete.
    BOS is not included: the tokenizer adds it.
    """
    if isinstance(messages, str):
        messages = [("user", messages)]
    if not messages:
        raise ValueError("a chat needs at least one message")
    parts = []
    for i, message in enumerate(messages):
        if not (isinstance(message, (tuple, list)) and len(message) == 2):
            raise TypeError(f"message {i} must be a (role, text) pair, got {message!r}")
        role, text = message
        if role not in _ROLES:
            raise ValueError(f"message {i} has role {role!r}; expected one of {sorted(_ROLES)}")
        parts.append(f"{START_OF_TURN}{_ROLES[role]}\n{text}{END_OF_TURN}\n")
    if add_generation_prompt:
        parts.append(f"{START_OF_TURN}model\n")
    return "".join(parts)

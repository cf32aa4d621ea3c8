"""Pure MSSanté format code (IHE XDM zip, MIME messages, DSN/MDN reports): no Django import."""

from __future__ import annotations


class CodedError(ValueError):
    """A format error with a stable machine `code` and a French `message` for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

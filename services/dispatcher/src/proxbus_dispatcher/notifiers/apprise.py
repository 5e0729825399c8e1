"""Apprise URLs (Slack, Teams, Telegram, ntfy, Matrix...): run in a thread under a timeout."""

from __future__ import annotations

import asyncio
import warnings
from typing import Literal

import apprise as apprise_lib
from pydantic import Field, field_validator

from ..errors import PermanentError, RetryableError
from ..notification import Notification
from ._base import ReceiverBase, render_body, render_title, split_list


class AppriseReceiver(ReceiverBase):
    """``type: apprise``: Apprise URLs (each may hold a token: never logged)."""

    type: Literal["apprise"]
    urls: list[str] = Field(min_length=1)

    _split = field_validator("urls", mode="before")(split_list)


_NOTIFY_TYPES = {
    "critical": apprise_lib.NotifyType.FAILURE,
    "error": apprise_lib.NotifyType.FAILURE,
    "warning": apprise_lib.NotifyType.WARNING,
}


class AppriseNotifier:
    """Notifies every URL of the receiver; any failure retries the whole notification."""

    def __init__(self, receiver: AppriseReceiver) -> None:
        self.receiver = receiver
        self._apprise = apprise_lib.Apprise()
        for url in receiver.urls:
            # The first add() loads apprise's plugins, one of which imports the deprecated
            # stdlib ``imghdr`` (a DeprecationWarning on 3.11/3.12 that is not ours to fix).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                added = self._apprise.add(url)
            if not added:
                # The URL may hold a token: name its scheme only.
                scheme = url.split(":", 1)[0]
                raise PermanentError(f"apprise {receiver.name}: unsupported URL ({scheme}://...)")

    async def send(self, notification: Notification) -> None:
        title = render_title(self.receiver, notification)
        body = render_body(self.receiver, notification, 8000)
        notify_type = _NOTIFY_TYPES.get(notification.severity.value, apprise_lib.NotifyType.INFO)
        try:
            ok = await asyncio.wait_for(
                asyncio.to_thread(
                    self._apprise.notify, body=body, title=title, notify_type=notify_type
                ),
                self.receiver.timeout,
            )
        except TimeoutError:
            raise RetryableError(
                f"apprise {self.receiver.name}: timed out after {self.receiver.timeout:g}s"
            ) from None
        if not ok:
            raise RetryableError(f"apprise {self.receiver.name}: at least one URL failed")

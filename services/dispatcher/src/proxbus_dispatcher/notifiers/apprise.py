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
    # What the rendered body is (apprise converts it to each service's format): ``text`` for
    # the default template; ``markdown`` or ``html`` for a body_template written in them.
    body_format: Literal["text", "markdown", "html"] = "text"

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
        self._body_format = apprise_lib.NotifyFormat(receiver.body_format)
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
                    self._apprise.notify,
                    body=body,
                    title=title,
                    notify_type=notify_type,
                    # The default template's body is plain text: apprise escapes it for each
                    # service's format (HTML mail, Matrix, Telegram markdown...); unsaid, it
                    # passed event text through as HTML or markdown.
                    body_format=self._body_format,
                ),
                self.receiver.timeout,
            )
        except TimeoutError:
            raise RetryableError(
                f"apprise {self.receiver.name}: timed out after {self.receiver.timeout:g}s"
            ) from None
        if not ok:
            raise RetryableError(f"apprise {self.receiver.name}: at least one URL failed")

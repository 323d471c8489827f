"""Auth-key management for people: see which key is in use, change it, never leak it by accident.

The key authenticates the kernel's control channel with each child, so it is a
secret. A notebook is saved with its outputs and, often, its widgets' state;
so the full key is never put in an output or a widget's state unless the user
asks for it (``%authkey --show``, the Reveal toggle). What is shown instead
is its fingerprint (first 8 hex digits of its SHA-256): enough to see which
processes share a key, useless to an attacker. The field where a key is typed
is a password field, emptied as soon as the key has been taken.

Changing the key changes it for processes started from now on: each child got
its key when it was created, so the running ones keep theirs.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets

import processing
from processing import authkey as _authkey

__all__ = ["AuthKeyBox", "describe", "on_key_change", "regenerate", "set_key"]

MASK = "\u25cf" * 8

_listeners: list[Callable[[], Any]] = []


def on_key_change(listener: Callable[[], Any]) -> Callable[[], None]:
    """Call ``listener()`` after the key is changed through this module; returns a remover.

    Code that calls ``setAuthKey`` directly is not seen here; panels also
    compare the key on their once-a-second refresh, so they catch up anyway.
    """
    _listeners.append(listener)

    def remove() -> None:
        if listener in _listeners:
            _listeners.remove(listener)

    return remove


def _changed() -> None:
    for listener in list(_listeners):
        listener()


def current_key() -> bytes:
    return processing.currentProcess().authkey


def set_key(value: object) -> str:
    """Make ``value`` the key of processes started from now on; returns its fingerprint.

    Raises:
        TypeError: not a str or bytes.
        ValueError: empty, or (a str) with spaces or line breaks around it, which
            is nearly always a copy-paste slip that would make keys silently differ.
    """
    if isinstance(value, str) and value != value.strip():
        raise ValueError("the key has spaces or line breaks at its start or end (a copy-paste slip?); "
                         "remove them and set it again")
    key = _authkey.as_key(value)
    processing.currentProcess().setAuthKey(key)
    _changed()
    return _authkey.fingerprint(key)


def regenerate() -> str:
    """Give processes started from now on a fresh random key; returns its fingerprint."""
    return set_key(_authkey.new_key())


def describe(reveal: bool = False) -> str:
    """One line about the current key: its fingerprint, and the key itself only if ``reveal``."""
    key = current_key()
    shown = _authkey.key_text(key) if reveal else f"{MASK} (hidden)"
    return f"auth key {shown}, fingerprint {_authkey.fingerprint(key)}"


def _running() -> int:
    return len(processing.activeChildren())


def changed_note(fingerprint: str) -> str:
    """What a key change means for the user, in words."""
    running = _running()
    if not running:
        return f"new key {fingerprint}: processes started from now on use it"
    who = "the running process keeps the key it" if running == 1 else \
        f"the {running} running processes keep the key they"
    return f"new key {fingerprint}: processes started from now on use it; {who} started with"


class AuthKeyBox(ipywidgets.VBox):
    """The current process's key, masked with its fingerprint; Reveal, Regenerate, and a field to set one.

    Every part has a CSS class (``ipyprocessing-authkey-value`` ...) so tests
    and themes can find it. ``refresh()`` (called by the panel once a second)
    picks up a key changed elsewhere.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._lock = threading.RLock()
        self._shown: bytes | None = None
        self.value = _html("", "value")
        self.reveal = ipywidgets.ToggleButton(description="Reveal", value=False, icon="eye",
                                              tooltip="Show the full key (then saved with the notebook)",
                                              _dom_classes=("ipyprocessing-authkey-reveal",))
        self.regenerate = ipywidgets.Button(description="Regenerate", icon="refresh",
                                            tooltip="A fresh random key for processes started from now on",
                                            _dom_classes=("ipyprocessing-authkey-regenerate",))
        self.field = ipywidgets.Password(placeholder="a key for processes started from now on",
                                         layout=ipywidgets.Layout(width="22em", max_width="100%"),
                                         _dom_classes=("ipyprocessing-authkey-field",))
        self.apply = ipywidgets.Button(description="Set key", tooltip="Use the key typed on the left",
                                       _dom_classes=("ipyprocessing-authkey-set",))
        self.message = _html("", "message")
        self.reveal.observe(self._toggled, "value")
        self.regenerate.on_click(lambda _button: self._regenerate())
        self.apply.on_click(lambda _button: self._apply())
        controls = ipywidgets.HBox([self.value, self.reveal, self.regenerate, self.field, self.apply],
                                   layout=ipywidgets.Layout(align_items="center", flex_flow="row wrap"))
        super().__init__([controls, self.message], _dom_classes=("ipyprocessing-authkey",), **kwargs)
        self.refresh(force=True)

    def _toggled(self, change: dict[str, Any]) -> None:
        """Reveal becomes Hide while the key is shown, and back."""
        shown = bool(change["new"])
        with self.reveal.hold_sync():
            self.reveal.description = "Hide" if shown else "Reveal"
            self.reveal.icon = "eye-slash" if shown else "eye"
            self.reveal.tooltip = ("Mask the key again" if shown
                                   else "Show the full key (then saved with the notebook)")
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        """Show the current key (masked unless revealed) if it changed since last shown."""
        with self._lock:
            key = current_key()
            if key == self._shown and not force:
                return
            self._shown = key
            fingerprint = html.escape(_authkey.fingerprint(key))
            secret = html.escape(_authkey.key_text(key)) if self.reveal.value else MASK
            self.value.value = (
                # A revealed key (64 hex digits) wraps anywhere rather than run past a narrow panel.
                f"<b>auth key</b> <code class='ipyprocessing-authkey-secret' style='word-break:break-all'>"
                f"{secret}</code> "
                f"fingerprint <code class='ipyprocessing-authkey-fingerprint'>{fingerprint}</code>"
            )

    def text(self) -> str:
        return describe(reveal=self.reveal.value)

    def _regenerate(self) -> None:
        self._report(regenerate)

    def _apply(self) -> None:
        with self._lock:
            typed, self.field.value = self.field.value, ""  # never leave a key in the widget's state
        self._report(lambda: set_key(typed))

    def _report(self, change: Callable[[], str]) -> None:
        try:
            fingerprint = change()
        except (TypeError, ValueError) as error:
            problem = html.escape(f"key not changed: {error}")
            self.message.value = f"<span class='ipyprocessing-error'>{problem}</span>"
            return
        self.refresh()
        self.message.value = html.escape(changed_note(fingerprint))

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.text()
        return bundle


def _html(value: str, part: str) -> ipywidgets.HTML:
    return ipywidgets.HTML(value, _dom_classes=(f"ipyprocessing-authkey-{part}",))

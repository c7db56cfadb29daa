"""The app's language: English or 简体中文, chosen in the sidebar, kept in the link (`?lang=zh`), and at first
the browser's own language. Every run sets it for the library's messages too (`resnet_core.i18n`)."""

from __future__ import annotations

import streamlit as st

from resnet_core import i18n
from resnet_core.i18n import _

KEY = "ui.lang"  # session_state: the language the visitor chose ("en" / "zh")
DEFAULT_KEY = "ui.lang_browser"  # session_state: the browser's language, read once


def _session_language() -> str | None:
    """The session's chosen language, inside any of its runs (a fragment's too); None outside one."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
    if get_script_run_ctx(suppress_warning=True) is None:
        return None
    return st.session_state.get(KEY)


i18n.set_resolver(_session_language)  # a fragment's rerun, which does not run apply(), speaks the session's


def browser_language() -> str:
    """What the browser asks for (its locale, else its Accept-Language header); English when it says nothing."""
    try:
        locale = st.context.locale
    except Exception:  # noqa: BLE001 - no browser (AppTest)
        locale = None
    if locale:
        return i18n.pick(locale)
    try:
        return i18n.pick(st.context.headers.get("Accept-Language"))
    except Exception:  # noqa: BLE001 - no browser (AppTest)
        return i18n.DEFAULT


def from_link(value: str | None) -> str | None:
    """A link's `lang` value: "zh" (also zh-CN, zh-Hans, …) or "en"; anything else is not a language."""
    if not value:
        return None
    code = value.strip().lower()[:16]
    if code.startswith("zh"):
        return "zh"
    if code.startswith("en"):
        return "en"
    return None


def apply() -> str:
    """First thing in every run: the session's language (the switch's, else the link's, else the browser's),
    set for this run's messages. Returns it."""
    ss = st.session_state
    if DEFAULT_KEY not in ss:
        ss[DEFAULT_KEY] = browser_language()
    if ss.get(KEY) not in i18n.LANGUAGES:
        ss[KEY] = from_link(st.query_params.get("lang")) or ss[DEFAULT_KEY]
    i18n.set_language(ss[KEY])
    return str(ss[KEY])


def in_link() -> str | None:
    """The `lang` a link to this session should carry: the language, unless it is English and the browser's
    own (a link without `lang` opens in its reader's language)."""
    ss = st.session_state
    code = ss.get(KEY, i18n.DEFAULT)
    if code == i18n.DEFAULT and ss.get(DEFAULT_KEY, i18n.DEFAULT) == i18n.DEFAULT:
        return None
    return str(code)


def selector() -> None:
    """The switch at the top of the sidebar (its labels are each language's own name)."""
    st.segmented_control(_("Language"), list(i18n.LANGUAGES), key=KEY, required=True,
                         format_func=i18n.LANGUAGES.get, label_visibility="collapsed")


def declare() -> None:
    """Tell the browser (and a screen reader) the page's language: Streamlit's page says lang="en" whatever it
    shows. A fixed script per language, nothing from the visitor in it."""
    code = "zh-CN" if i18n.language() == "zh" else "en"
    st.html(f"<script>document.documentElement.lang = '{code}';</script>", unsafe_allow_javascript=True)

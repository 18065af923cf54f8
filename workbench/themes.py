"""Light, dark and high-contrast themes chosen to stay readable on a classroom projector."""

from __future__ import annotations

from textual.theme import Theme

#: Projectors wash out pale tints, so the light theme uses dark, saturated accents
#: on an almost-white background and keeps the footer keys strongly coloured.
WORKBENCH_LIGHT = Theme(
    name="workbench-light",
    primary="#0b4f9c",
    secondary="#5a2ca0",
    accent="#b35900",
    warning="#8a5a00",
    error="#b00020",
    success="#1d7a32",
    foreground="#111111",
    background="#fafafa",
    surface="#ececec",
    panel="#dde4ee",
    dark=False,
    variables={
        "footer-key-foreground": "#0b4f9c",
        "block-cursor-background": "#0b4f9c",
        "block-cursor-foreground": "#ffffff",
    },
)

WORKBENCH_DARK = Theme(
    name="workbench-dark",
    primary="#4fa3ff",
    secondary="#b48cff",
    accent="#ffb454",
    warning="#ffcc66",
    error="#ff6b6b",
    success="#6bdc87",
    foreground="#e8e8e8",
    background="#15181d",
    surface="#1f242b",
    panel="#27303b",
    dark=True,
    variables={"footer-key-foreground": "#ffb454"},
)

#: Pure black and white with yellow and cyan accents: survives any projector.
WORKBENCH_CONTRAST = Theme(
    name="workbench-contrast",
    primary="#ffff00",
    secondary="#00ffff",
    accent="#00ffff",
    warning="#ffff00",
    error="#ff5555",
    success="#00ff00",
    foreground="#ffffff",
    background="#000000",
    surface="#000000",
    panel="#1a1a1a",
    boost="#333333",
    dark=True,
    luminosity_spread=0.3,
    text_alpha=1.0,
    variables={
        "footer-key-foreground": "#ffff00",
        "block-cursor-background": "#ffff00",
        "block-cursor-foreground": "#000000",
        "border": "#ffffff",
        # Textual draws unfocused fields in a shade of the surface: black on black here.
        "border-blurred": "#9a9a9a",
    },
)

WORKBENCH_THEMES: tuple[Theme, ...] = (WORKBENCH_LIGHT, WORKBENCH_DARK, WORKBENCH_CONTRAST)

#: Short names accepted by ``workbench --theme``.
THEME_ALIASES: dict[str, str] = {
    "light": WORKBENCH_LIGHT.name,
    "dark": WORKBENCH_DARK.name,
    "contrast": WORKBENCH_CONTRAST.name,
    "high-contrast": WORKBENCH_CONTRAST.name,
}

DEFAULT_THEME = WORKBENCH_DARK.name


def resolve_theme_name(name: str | None) -> str:
    """Map ``light``/``dark``/``contrast`` (or a full theme name) to a registered theme name."""
    if not name:
        return DEFAULT_THEME
    return THEME_ALIASES.get(name.lower(), name)

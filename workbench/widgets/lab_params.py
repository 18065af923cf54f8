"""A lab's parameters as a form: an Input per number (checked as you type), a Switch per yes/no."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Input, Label, Static, Switch

from workbench.labs.base import Lab, Param, ParamValue
from workbench.labs.runner import format_value


def param_range(param: Param) -> str:
    """``1…64``, ``≥ 0``, or nothing: the range the help line states."""
    if param.minimum is not None and param.maximum is not None:
        return f"{param.minimum:g}…{param.maximum:g}"
    if param.minimum is not None:
        return f"≥ {param.minimum:g}"
    if param.maximum is not None:
        return f"≤ {param.maximum:g}"
    return ""


class LabParamsForm(Vertical):
    """The parameters of one lab; the texts typed are kept in ``texts`` so nothing typed is lost
    when the user looks at another lab and comes back."""

    DEFAULT_CSS = """
    LabParamsForm {
        height: auto;
        margin: 1 0 0 0;
    }
    LabParamsForm .param-row {
        height: auto;
    }
    LabParamsForm .param-name {
        width: 16;
        text-style: bold;
        color: $text;
    }
    LabParamsForm Input {
        width: 12;
    }
    LabParamsForm Switch {
        width: 12;
        height: 1;
        border: none;
        padding: 0;
    }
    LabParamsForm Switch:focus {
        border: none;
        background-tint: $foreground 10%;
    }
    LabParamsForm .param-help {
        width: 1fr;
        color: $text-muted;
        padding: 0 0 0 2;
    }
    LabParamsForm .param-none {
        color: $text-muted;
    }
    LabParamsForm #param-error {
        display: none;
        color: $text-error;
        text-style: bold;
    }
    LabParamsForm #param-error.-shown {
        display: block;
    }
    """

    def __init__(self, lab: Lab, texts: dict[str, str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lab = lab
        #: Parameter name -> the text in its field (shared with the tab, which keeps one per lab).
        self.texts = texts

    def compose(self) -> ComposeResult:
        if not self.lab.params:
            yield Static("This lab has no parameters.", classes="param-none")
        for param in self.lab.params:
            text = self.texts.get(param.name, format_value(param.default))
            with Horizontal(classes="param-row"):
                yield Label(param.name, classes="param-name", markup=False)
                if isinstance(param.default, bool):
                    yield Switch(value=param.parse(text), name=param.name, tooltip=param.help)
                else:
                    yield Input(
                        text,
                        name=param.name,
                        compact=True,
                        select_on_focus=False,
                        tooltip=param.help,
                    )
                limits = param_range(param)
                yield Label(
                    f"{param.help} ({limits})" if limits else param.help,
                    classes="param-help",
                    markup=False,
                )
        yield Static("", id="param-error", markup=False)

    def on_mount(self) -> None:
        for field in self.query(Input):
            self._check(field)

    def field(self, name: str) -> Widget:
        """The Input or Switch of parameter ``name``."""
        for widget in self.query("Input, Switch"):
            if widget.name == name:
                return widget
        raise KeyError(name)

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.input.name is not None:
            self.texts[event.input.name] = event.value
            self._check(event.input)

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        if event.switch.name is not None:
            self.texts[event.switch.name] = format_value(event.value)

    def _check(self, field: Input) -> None:
        """Mark a field whose text is not a valid value, and say why under the form."""
        try:
            self.lab.param(field.name or "").parse(field.value)
        except ValueError:
            field.add_class("-invalid")
        else:
            field.remove_class("-invalid")
        self._show_first_error()

    def _show_first_error(self) -> None:
        error = self.first_error()
        message = self.query_one("#param-error", Static)
        message.update(f"✗ {error[1]}" if error else "")
        message.set_class(error is not None, "-shown")

    def first_error(self) -> tuple[str, str] | None:
        """(parameter name, what is wrong) for the first field that does not parse, or None."""
        for param in self.lab.params:
            text = self.texts.get(param.name, format_value(param.default))
            try:
                param.parse(text)
            except ValueError as error:
                return param.name, str(error)
        return None

    def values(self) -> dict[str, ParamValue]:
        """Every parameter's value; ValueError (naming the parameter) if one does not parse."""
        return {
            param.name: param.parse(self.texts.get(param.name, format_value(param.default)))
            for param in self.lab.params
        }

"""The Struc2mapGAN panel (Tools > Volume Data > Struc2mapGAN): a form for the ``struc2map`` command.

Run builds the command text and runs it, so the log holds a command anyone can
repeat; in the GUI the command returns at once and the work goes on in the
background. The buttons, the progress bar and the last map's scores follow the
command's triggers, so they also follow a run typed at the command line; Stop
stops whichever run is going (as ``struc2map stop`` does). The panel touches its
widgets only from those triggers, whose handlers it removes when it closes.
"""
from __future__ import annotations

from chimerax.core.tools import ToolInstance

from .options import DEVICES, PRECISIONS
from .resolution import MAX_RESOLUTION, MIN_RESOLUTION

DEFAULT_RESOLUTION = 3.5
NO_MAP = "none"


class Struc2mapTool(ToolInstance):
    """Structure, resolution, device, precision, weights, comparison map and map to fit into; Run, Stop and
    Help; progress; last result."""

    SESSION_ENDURING = False
    SESSION_SAVE = False
    help = "help:user/tools/struc2mapgan.html"

    def __init__(self, session, tool_name: str) -> None:
        super().__init__(session, tool_name)
        from chimerax.ui import MainToolWindow

        self.tool_window = MainToolWindow(self)
        self._build_ui(self.tool_window.ui_area)
        self._handlers = self._add_handlers(session)
        self._fill_model_menus()
        self.tool_window.manage("side")

    def _build_ui(self, area) -> None:
        from Qt.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QProgressBar,
                                  QPushButton, QVBoxLayout)

        self.structure_menu = QComboBox()
        self.resolution = QDoubleSpinBox()
        self.resolution.setRange(MIN_RESOLUTION, MAX_RESOLUTION)
        self.resolution.setDecimals(1)
        self.resolution.setSingleStep(0.1)
        self.resolution.setSuffix(" Å")
        self.resolution.setValue(DEFAULT_RESOLUTION)
        self.device_menu = QComboBox()
        self.device_menu.addItems(DEVICES)
        self.precision_menu = QComboBox()
        self.precision_menu.addItems(PRECISIONS)
        self.compare_menu = QComboBox()
        self.weights_menu = QComboBox()
        self._fill_weights_menu()
        self.fit_menu = QComboBox()
        self.move_structure = QCheckBox("Move the structure with the fit")
        form = QFormLayout()
        form.addRow("Structure", self.structure_menu)
        form.addRow("Resolution", self.resolution)
        form.addRow("Device", self.device_menu)
        form.addRow("Precision", self.precision_menu)
        form.addRow("Weights", self.weights_menu)
        form.addRow("Compare with map", self.compare_menu)
        form.addRow("Fit into map", self.fit_menu)
        form.addRow("", self.move_structure)

        self.run_button = QPushButton("Run")
        self.stop_button = QPushButton("Stop")
        self.help_button = QPushButton("Help")
        self.run_button.clicked.connect(self.run_command)
        self.stop_button.clicked.connect(self.stop)
        self.help_button.clicked.connect(self.show_help)
        self.stop_button.setEnabled(False)
        buttons = QHBoxLayout()
        for button in (self.run_button, self.stop_button, self.help_button):
            buttons.addWidget(button)

        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m tiles")
        self.progress.setValue(0)
        self.result = QLabel("No map made yet.")
        self.result.setWordWrap(True)

        layout = QVBoxLayout()
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.result)
        area.setLayout(layout)

    def _add_handlers(self, session) -> list:
        from chimerax.core.models import ADD_MODELS, MODEL_ID_CHANGED, MODEL_NAME_CHANGED, REMOVE_MODELS

        from .background import current_run
        from .cmd import PROGRESS_TRIGGER, RESULT_TRIGGER, RUN_TRIGGER, struc2map_triggers

        triggers = struc2map_triggers(session)
        refresh = lambda *_: self._fill_model_menus()  # noqa: E731
        self._set_running(current_run(session) is not None)  # a run typed before the panel opened
        return ([triggers.add_handler(t, refresh)
                 for t in (ADD_MODELS, REMOVE_MODELS, MODEL_ID_CHANGED, MODEL_NAME_CHANGED)]
                + [triggers.add_handler(PROGRESS_TRIGGER, self._show_progress),
                   triggers.add_handler(RESULT_TRIGGER, self._show_result),
                   triggers.add_handler(RUN_TRIGGER, lambda _name, running: self._set_running(running))])

    def _fill_model_menus(self) -> None:
        """List open atomic structures and maps as "#id name", keeping the current choices."""
        from chimerax.atomic import AtomicStructure
        from chimerax.map import Volume

        models = self.session.models.list()
        for menu, kind, extra in ((self.structure_menu, AtomicStructure, []), (self.compare_menu, Volume, [NO_MAP]),
                                  (self.fit_menu, Volume, [NO_MAP])):
            current = menu.currentData()
            menu.clear()
            for label in extra:
                menu.addItem(label, None)
            for m in sorted((m for m in models if isinstance(m, kind)), key=lambda m: m.id):
                menu.addItem(f"#{m.id_string} {m.name}", f"#{m.id_string}")
            index = menu.findData(current)
            menu.setCurrentIndex(max(index, 0))

    def _fill_weights_menu(self) -> None:
        """Installed weights (the user's imported ones and the shipped ones), the shipped default first."""
        from .weights_meta import default_weights_path, installed_weights

        self.weights_menu.addItem("shipped (default)", None)
        default = default_weights_path()
        for entry in installed_weights():
            if entry.path != default:
                self.weights_menu.addItem(entry.name, entry.name)
                self.weights_menu.setItemData(self.weights_menu.count() - 1, entry.description,
                                              self._tooltip_role())
        self.weights_menu.setToolTip("Generator weights: import more with 'struc2map weights import' "
                                     "(see the help page)")

    @staticmethod
    def _tooltip_role():
        from Qt.QtCore import Qt

        return Qt.ItemDataRole.ToolTipRole

    def command_text(self) -> str | None:
        """The struc2map command for the current choices; None without a structure."""
        structure = self.structure_menu.currentData()
        if structure is None:
            return None
        text = f"struc2map {structure} resolution {self.resolution.value():g}"
        device = self.device_menu.currentText()
        if device != "auto":
            text += f" device {device}"
        precision = self.precision_menu.currentText()
        if precision != "auto":
            text += f" precision {precision}"
        weights = self.weights_menu.currentData()
        if weights is not None:
            from chimerax.core.commands import quote_if_necessary

            text += f" weights {quote_if_necessary(weights)}"
        compare = self.compare_menu.currentData()
        if compare is not None:
            text += f" compare {compare}"
        fit = self.fit_menu.currentData()
        if fit is not None:
            text += f" fit {fit}" + (" moveStructure true" if self.move_structure.isChecked() else "")
        return text

    def run_command(self) -> None:
        """Run the command text (logged like a typed command); the buttons follow the run's triggers."""
        from chimerax.core.commands import run

        text = self.command_text()
        if text is None:
            self.session.logger.status("Open an atomic structure to make a map from.", color="red")
            return
        run(self.session, text)

    def stop(self) -> None:
        from .cmd import request_stop

        request_stop(self.session)

    def show_help(self) -> None:
        from chimerax.core.commands import run

        run(self.session, f"help {self.help}")

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        if running:
            self.progress.setRange(0, 0)  # busy until the first batch of tiles reports
        elif self.progress.maximum() == 0:  # ended before any tiles: not busy any more
            self.progress.setRange(0, 1)

    def _show_progress(self, _trigger, data) -> None:
        done, total = data
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _show_result(self, _trigger, data) -> None:
        volume = data["volume"]
        lines = [f"#{volume.id_string} {volume.name} ({data['seconds']:.1f} s)"]
        lines += [f"vs {label}: correlation {c:.3f}, about mean {cm:.3f}"
                  for label, (c, cm) in data["correlations"].items()]
        lines += [f"fit {f.label}: about mean {f.before[1]:.3f} → {f.after[1]:.3f}, shift {f.shift:.2f} Å, "
                  f"rotation {f.rotation:.1f}°" for f in data.get("fits", [])]
        self.result.setText("\n".join(lines))

    def delete(self) -> None:
        for handler in self._handlers:
            handler.remove()
        super().delete()

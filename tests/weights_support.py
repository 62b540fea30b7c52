"""What the shipped-weights tests (test_default_weights, test_v2_weights, test_shipped_weights) share: the
README's command run against an experimental map."""
import json

from chimerax.struc2map import cli
from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.mapio import read_map


def generate_against_experimental(tmp_path, capsys, model, experimental, resolution: float,
                                  *options: str) -> tuple[dict, MapData]:
    """``struc2map generate MODEL -r R --compare EXPERIMENTAL --device cpu --json`` (plus ``options``, e.g.
    ``--weights v2``) must succeed; returns its JSON report and the map it wrote. The summary is printed, for
    the record."""
    out, summary = tmp_path / "generated.mrc", tmp_path / "generated.json"
    assert cli.main(["generate", str(model), "--resolution", str(resolution), "--output", str(out), "--compare",
                     str(experimental), *options, "--device", "cpu", "--json", str(summary)]) == 0
    print(capsys.readouterr().out)
    return json.loads(summary.read_text(encoding="utf-8")), read_map(out)

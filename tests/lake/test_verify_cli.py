"""`tailpipe verify` over a lake: exit 0 when clean, 1 with problems, 2 on bad input."""

import gzip
import json

from typer.testing import CliRunner

from tailpipe_ai.cli import app
from tailpipe_ai.exporter.signing import Keyring, new_key_entry, sign
from tailpipe_ai.semconv import Record

runner = CliRunner()


def _write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        fh.write("".join(json.dumps(d) + "\n" for d in lines))


def test_verify_cli(tmp_path, monkeypatch):
    spec = new_key_entry("k1")
    monkeypatch.setenv("TAILPIPE_SIGNING_KEYS", spec)
    ring = Keyring.from_spec(spec)
    good = [
        sign(Record(integration="sdk", provider="openai", token_accuracy="exact", input_tokens=i).to_dict(), ring)
        for i in range(3)
    ]
    part = tmp_path / "ai-telemetry-raw/year=2026/month=11/day=22"
    _write(part / "a.gz", good)
    r = runner.invoke(app, ["verify", str(tmp_path)])
    assert r.exit_code == 0, r.output
    tampered = dict(good[0], input_tokens=999)
    _write(part / "b.gz", [tampered])
    r = runner.invoke(app, ["verify", str(tmp_path), "--json"])
    assert r.exit_code == 1
    assert json.loads(r.output)["counts"]["bad_signature"] == 1
    r = runner.invoke(app, ["verify", str(tmp_path / "nope")])
    assert r.exit_code == 2

"""mxlab.remote.install's upload plan: what to send, keep and remove on the host (pure)."""
from mxlab.remote.install import local_files, plan_upload


def test_plan_uploads_changed_and_new_keeps_same_removes_stale():
    wanted = {"cli.py": "a", "contract.py": "b", "catalogue.json": "c"}
    have = {"cli.py": "a", "contract.py": "OLD", "gone.py": "d"}
    upload, unchanged, stale = plan_upload(wanted, have)
    assert sorted(upload) == ["catalogue.json", "contract.py"]
    assert unchanged == ["cli.py"]
    assert stale == ["gone.py"]
    assert plan_upload(wanted, wanted) == ([], list(wanted), [])


def test_local_files_are_the_agents_sources_and_data_without_bytecode(tmp_path):
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "cli.py").write_text("print(1)\n")
    (tmp_path / "old.pyc").write_bytes(b"\0")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "catalogue.json").write_text("{}")
    assert sorted(local_files(tmp_path)) == ["cli.py", "data/catalogue.json"]
    real = local_files()
    assert "contract.py" in real and "catalogue.json" in real

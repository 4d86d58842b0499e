"""The server and the command line: where they bind, what they refuse, and the one-file export."""

import json
import socket
import urllib.error
import urllib.request

import pytest
import torch

import lstmkit
from lstmkit.cli import main
from lstmkit.explorer import from_model
from lstmkit.explorer.server import Explorer, PortInUse

pytest.importorskip("starlette", reason="the explore extra (starlette, uvicorn) is not installed")


@pytest.fixture(scope="module")
def explorer():
    torch.manual_seed(0)
    server = Explorer([from_model(lstmkit.RNN(2, 3), torch.randn(3, 6, 2))])
    yield server
    server.stop()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_server_binds_to_localhost_on_a_free_port(explorer):
    assert explorer.url.startswith("http://127.0.0.1:") and explorer.port > 0
    status, meta = get(explorer.url + "api/meta")
    assert status == 200 and meta["subjects"][0]["records"] == ["a", "h"]


def test_a_request_the_model_cannot_serve_is_a_400_naming_the_problem(explorer):
    status, body = get(explorer.url + "api/sequence?seq=7")
    assert status == 400 and body["error"] == "`seq` must be in [0, 2] (3 sequences), got 7"


def test_a_port_in_use_is_refused_with_the_way_out():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1 is in use; choose another with --port"):
            Explorer([from_model(lstmkit.RNN(2, 3), torch.randn(1, 4, 2))], port=port)


def test_cli_port_in_use_is_one_line_and_status_2(make_run, capsys):
    run = make_run()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["explore", "--run", str(run), "--port", str(port), "--no-browser", "--sequences", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"port {port} on 127.0.0.1 is in use" in err


def test_cli_missing_run_folder_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["explore", "--run", str(tmp_path / "gone"), "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_cli_without_the_explore_extra_says_how_to_install_it(make_run, monkeypatch, capsys):
    monkeypatch.setattr("lstmkit.explorer.EXTRA", {"no_such_module_for_lstmkit": "uvicorn"})
    assert main(["explore", "--run", str(make_run()), "--no-browser"]) == 2
    assert 'pip install "lstmkit[explore]"' in capsys.readouterr().err


def test_cli_export_writes_one_file_that_loads_nothing_else(make_run, tmp_path, capsys):
    page = tmp_path / "page.html"
    assert main(["explore", "--run", str(make_run()), "--export", str(page), "--sequences", "3"]) == 0
    html = page.read_text()
    assert "window.EXPLORER_DATA" in html and '"mode":"file"' in html
    assert "src=" not in html and "<link" not in html and "http://" not in html and "https://" not in html


def test_import_lstmkit_does_not_import_the_server():
    import subprocess
    import sys

    code = ("import sys, lstmkit, lstmkit.cli; heavy = [m for m in ('starlette', 'uvicorn', 'playwright', "
            "'lstmkit.explorer.server', 'webbrowser') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_cli_compare_of_another_task_is_one_line_and_status_2(make_run, capsys):
    a, b = make_run("a"), make_run("b", task="reber", seq_len=12)
    assert main(["explore", "--run", str(a), "--compare", str(b), "--export", "unused.html"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "do not read the same sequences" in err


def test_cli_serves_until_stopped_and_prints_where(make_run):
    import signal
    import subprocess
    import sys

    run = make_run()
    proc = subprocess.Popen([sys.executable, "-m", "lstmkit", "explore", "--run", str(run), "--no-browser",
                             "--sequences", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("lstmkit explorer at http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[3]
        status, meta = get(url + "api/meta")
        assert status == 200 and meta["subjects"][0]["sequences"] == 4
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the server stops, status 0
        assert proc.wait(timeout=30) == 0

"""`factorkit serve`: the JSON API (every operation, bad uploads, unknown names, no path to the
filesystem, concurrent clients, the loopback guard), the model hooks the editor draws its controls
from, and the command line. The browser test is tests/test_serve_browser.py."""

from __future__ import annotations

import io
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import factorkit as fk
from factorkit.cli import main

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from factorkit.serve.app import create_app, find_runs  # noqa: E402

ATTRS = ("Smiling", "Eyeglasses", "Bangs")


class StubJudge:
    """Reads 'attributes' as the mean of three pixel rows, every factor as 0 or 1 by brightness."""

    def __init__(self, info):
        self.info = info

    def probabilities(self, x):
        rows = x.mean((1, 3))  # (N, H)
        return rows[:, : len(self.info.attributes)]

    def read(self, x):
        return (x.mean((1, 2, 3)) > 0.5).long()[:, None].expand(-1, len(self.info.factors))


@pytest.fixture(scope="module")
def faces():
    return fk.data.load("faces", "train", size=240)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, faces):
    root = tmp_path_factory.mktemp("runs")
    builds = {
        "mdd": ("mddae", {"conv": (8, 8, 16, 16), "fc": (32,), "z_dim": 6}),
        "mix": ("mixing", {"num_chunks": 4, "chunk_size": 3, "width": 0.125, "cls_width": 0.05}),
        "dna": ("dna-gan", {"attributes": ATTRS, "width": 4, "piece_channels": 2, "schedule": "joint"}),
        "bvae": ("betavae", {"latent_dim": 4}),
    }
    for name, (method, kw) in builds.items():
        model = fk.models.build(method, faces, seed=0, **kw)
        fk.train(model, faces, steps=3, out=root / "group" / name if name == "bvae" else root / name, batch_size=8,
                 num_workers=0, progress=False, checkpoint_every=0, image_every=0)
    (root / "secret.txt").write_text("TOP-SECRET")
    return root


@pytest.fixture(scope="module")
def app(runs):
    judge = StubJudge(fk.data.load("faces", "test", size=240).info)
    return create_app(runs, judge=judge)


def client(app, host="127.0.0.1", base="http://127.0.0.1"):
    return TestClient(app, base_url=base, client=(host, 50000))


def run_id(c, name):
    return next(r["id"] for r in c.get("/api/runs").json() if r["name"].endswith(name))


def png_of(url: str) -> np.ndarray:
    import base64

    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def as_png(t: torch.Tensor) -> np.ndarray:
    return (t.detach().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def png_bytes(w=100, h=80, colour="red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, "PNG")
    return buf.getvalue()


# --- the runs found and the controls declared ------------------------------------------------------


def test_runs_are_found_below_a_folder_and_a_run_is_its_own_list(runs):
    assert [p.name for p in find_runs(runs)] == ["dna", "bvae", "mdd", "mix"]  # sorted walk: dna, group/bvae, mdd, mix
    assert find_runs(runs / "mdd") == [runs / "mdd"]


def test_controls_follow_each_models_operations(app):
    c = client(app)
    spec = {r["name"].split("/")[-1]: c.get(f"/api/runs/{r['id']}").json() for r in c.get("/api/runs").json()}
    mdd, mix, dna, bvae = spec["mdd"], spec["mix"], spec["dna"], spec["bvae"]
    assert [x["name"] for x in mdd["edit"]["controls"]] == list(fk.data.load("faces", "test", size=240).info.attributes)
    assert {(x["lo"], x["hi"]) for x in mdd["edit"]["controls"]} == {(-0.5, 2.0)}  # mddAE sets any intensity
    assert "swap" not in mdd and len(mdd["traverse"]["controls"]) == 7 + 6  # ŷ units then z
    assert mdd["traverse"]["controls"][0]["label"] == "dimension 0 (ŷ Smiling)"
    assert "edit" not in mix and [p["name"] for p in mix["swap"]["pieces"]] == ["chunk0", "chunk1", "chunk2", "chunk3"]
    assert mix["swap"]["pieces"][3]["label"] == "chunk 3" and len(mix["traverse"]["controls"]) == 12
    assert [p["name"] for p in dna["swap"]["pieces"]] == [*ATTRS, "z"] and "traverse" not in dna
    assert [x["name"] for x in dna["edit"]["controls"]] == list(ATTRS)
    assert bvae["sample"] and not mdd["sample"] and "edit" not in bvae and "swap" not in bvae


# --- every operation of mddae and mixing ----------------------------------------------------------------


def test_mddae_upload_edit_traverse_match_the_model(app, runs):
    c = client(app)
    rid = run_id(c, "mdd")
    model = fk.load(runs / "mdd")
    r = c.post(f"/api/runs/{rid}/images", content=png_bytes(), headers={"X-Filename": "..%2F..%2Fetc%2Fred.png"})
    assert r.status_code == 200
    rec = r.json()
    assert rec["notice"] == "converted red.png from 100x80 RGB to 64x64 RGB (centre crop + resize)"  # the name, no path
    x = torch.from_numpy(png_of(rec["image"]).astype(np.float32) / 255).permute(2, 0, 1)[None]
    assert np.array_equal(png_of(rec["reconstruction"]), as_png(model.reconstruct(x)[0]))
    y = model.encode(x)["y"][0]
    assert rec["values"] == {a: round(float(y[k]), 3) for k, a in enumerate(model.info.attributes)}  # sliders start here
    assert rec["knobs"] == [round(v, 4) for v in model.traversal_code(x).tensor[0].tolist()]
    assert set(rec["reading"]["attributes"]) == set(model.info.attributes) and rec["reading"]["factors"]

    r = c.post(f"/api/runs/{rid}/edit", json={"image": rec["id"], "values": {"Smiling": 1.7, "bangs": -0.2}})
    assert r.status_code == 200
    code = model.traversal_code(x)
    t = code.tensor.clone()
    t[0, 0], t[0, 3] = 1.7, -0.2  # ŷ Smiling and ŷ Bangs, set at once
    want = model.decode(fk.models.base.Code(t, code.slices))
    assert np.array_equal(png_of(r.json()["image"]), as_png(want[0]))
    assert np.array_equal(png_of(c.post(f"/api/runs/{rid}/edit", json={"image": rec["id"], "values": {"Smiling": 1.7}})
                                 .json()["image"]), as_png(model.edit(x, "Smiling", 1.7)[0]))

    r = c.post(f"/api/runs/{rid}/traverse", json={"image": rec["id"], "values": {"9": 2.5}})
    assert r.status_code == 200
    assert np.array_equal(png_of(r.json()["image"]), as_png(model.traverse(x, 9, [2.5])[0, 0]))
    png = c.get(f"/api/runs/{rid}/images/{rec['id']}.png")
    assert png.headers["content-type"] == "image/png" and np.array_equal(np.asarray(Image.open(io.BytesIO(png.content))),
                                                                        png_of(rec["image"]))


def test_mixing_swap_and_traverse_match_the_model(app, runs):
    c = client(app)
    rid = run_id(c, "mix")
    model = fk.load(runs / "mix")
    a, b = c.post(f"/api/runs/{rid}/examples/0").json(), c.post(f"/api/runs/{rid}/examples/1").json()
    assert a["source"].startswith("test image") and a["values"] == {} and a["reading"] is not None
    xa, xb = (torch.from_numpy(png_of(r["image"]).astype(np.float32) / 255).permute(2, 0, 1)[None] for r in (a, b))
    r = c.post(f"/api/runs/{rid}/swap", json={"image": a["id"], "other": b["id"], "pieces": ["chunk1", "CHUNK3"]})
    assert r.status_code == 200
    assert np.array_equal(png_of(r.json()["image"]), as_png(model.swap(xb, xa, ["chunk1", "chunk3"])[0]))  # b's pieces into a
    r = c.post(f"/api/runs/{rid}/traverse", json={"image": a["id"], "values": {"0": -1.0, "5": 1.0}})
    code = model.encode(xa).tensor.clone()
    code[0, 0], code[0, 5] = -1.0, 1.0
    assert np.array_equal(png_of(r.json()["image"]), as_png(model.decode(fk.models.base.Code(code))[0]))
    assert c.post(f"/api/runs/{rid}/examples/random").status_code == 200


def test_dna_gan_edit_and_swap_and_betavae_sample(app, runs):
    c = client(app)
    rid = run_id(c, "dna")
    model = fk.load(runs / "dna")
    a, b = c.post(f"/api/runs/{rid}/examples/2").json(), c.post(f"/api/runs/{rid}/examples/3").json()
    xa, xb = (torch.from_numpy(png_of(r["image"]).astype(np.float32) / 255).permute(2, 0, 1)[None] for r in (a, b))
    r = c.post(f"/api/runs/{rid}/swap", json={"image": a["id"], "other": b["id"], "pieces": ["eyeglasses"]})
    assert np.array_equal(png_of(r.json()["image"]), as_png(model.swap(xb, xa, ["Eyeglasses"])[0]))
    r = c.post(f"/api/runs/{rid}/edit", json={"image": a["id"], "values": {"Bangs": 0}})
    assert np.array_equal(png_of(r.json()["image"]), as_png(model.edit(xa, "Bangs", 0.0)[0]))  # annihilated
    rid = run_id(c, "bvae")
    out = c.post(f"/api/runs/{rid}/sample", json={"n": 3, "seed": 5}).json()
    want = fk.load(runs / "group" / "bvae").sample(3, generator=torch.Generator().manual_seed(5))
    assert [png_of(u).tolist() for u in out["images"]] == [as_png(w).tolist() for w in want]


# --- bad input --------------------------------------------------------------------------------------


def png_header(w: int, h: int) -> bytes:
    """A valid PNG signature + IHDR claiming w×h (and nothing else): a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    data = zlib.compress(b"\0" * 1000)  # the start of the pixel data: a few bytes that inflate enormously
    idat = struct.pack(">I", len(data)) + b"IDAT" + data + struct.pack(">I", zlib.crc32(b"IDAT" + data))
    return b"\x89PNG\r\n\x1a\n" + chunk + idat


@pytest.mark.parametrize("body, status, words", [
    (b"just some text, not an image", 415, "not a format PIL knows"),
    (png_bytes()[:70], 415, "truncated"),
    (png_header(20000, 20000), 413, "400000000 pixels"),
    (png_header(5000, 4000), 413, "5000x4000 pixels; the limit is 16,777,216"),
    (b"", 415, "empty"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", 415, "not a format PIL knows"),  # EPS is never opened
    (b"\0" * (10 * 1024 * 1024 + 1), 413, "limit is 10,485,760"),
])
def test_bad_uploads_get_a_4xx_with_a_message(app, body, status, words):
    c = client(app)
    r = c.post(f"/api/runs/{run_id(c, 'mdd')}/images", content=body)
    assert r.status_code == status and words in r.json()["detail"], r.json()


def test_a_streamed_upload_without_length_is_cut_at_the_cap(runs):
    app = create_app(runs / "mdd", judge="off", max_bytes=1000)

    def body():
        for _ in range(50):
            yield b"x" * 100

    r = client(app).post("/api/runs/0/images", content=body())
    assert r.status_code == 413 and "1,000-byte limit" in r.json()["detail"]


@pytest.mark.parametrize("path, payload, status, words", [
    ("edit", {"values": {"Nope": 1.0}}, 400, "unknown attribute 'Nope'; mddae edits Smiling"),
    ("edit", {"values": {"Smiling": 9.0}}, 400, "outside -3..4.5"),
    ("edit", {"values": {"Smiling": 1.0}, "colour": "red"}, 422, "Extra inputs are not permitted"),
    ("edit", {"values": {"Smiling": "lots"}}, 422, "valid number"),
    ("traverse", {"values": {"99": 1.0}}, 400, "dimension 99 out of range 0..12"),
    ("swap", {"other": None, "pieces": ["chunk0"]}, 400, "does not support 'swap'"),
    ("sample", {"n": 2}, 400, "does not support 'sample'"),
])
def test_unknown_names_and_bad_values_get_a_4xx(app, path, payload, status, words):
    c = client(app)
    rid = run_id(c, "mdd")
    image = c.post(f"/api/runs/{rid}/examples/0").json()["id"]
    body = {k: (image if v is None else v) for k, v in payload.items()}
    if path != "sample":
        body["image"] = image
    r = c.post(f"/api/runs/{rid}/{path}", json=body)
    detail = r.json()["detail"]
    assert r.status_code == status and words in (detail if isinstance(detail, str) else str(detail)), detail


def test_unknown_chunk_image_and_run(app):
    c = client(app)
    rid = run_id(c, "mix")
    image = c.post(f"/api/runs/{rid}/examples/0").json()["id"]
    r = c.post(f"/api/runs/{rid}/swap", json={"image": image, "other": image, "pieces": ["chunk9"]})
    assert r.status_code == 400 and "unknown piece 'chunk9'; mixing swaps chunk0, chunk1, chunk2, chunk3" in r.json()["detail"]
    r = c.post(f"/api/runs/{rid}/swap", json={"image": image, "other": "feedbeef", "pieces": ["chunk0"]})
    assert r.status_code == 404 and "unknown image 'feedbeef'" in r.json()["detail"]
    assert c.get("/api/runs/7").status_code == 404 and "GET /api/runs lists" in c.get("/api/runs/7").json()["detail"]
    assert c.post(f"/api/runs/{rid}/examples/6").status_code == 400


@pytest.mark.parametrize("path", [
    "/static/../secret.txt", "/static/..%2Fsecret.txt", "/static/%2e%2e/%2e%2e/secret.txt", "/api/runs/..%2F..%2Fsecret.txt",
    "/api/runs/-1", "/api/runs/0%2F..%2F..", "/api/runs/0/images/..%2F..%2Fsecret.txt.png", "/secret.txt", "/static/config.yaml",
    "/static/app.js/../../secret.txt",
])
def test_nothing_outside_the_run_directory_can_be_read(app, path):
    r = client(app).get(path)
    assert r.status_code == 404 and "TOP-SECRET" not in r.text and "model:" not in r.text


def test_the_page_and_its_assets_are_served_with_nothing_from_outside(app):
    c = client(app)
    page = c.get("/").text
    assert "/static/app.js" in page and "/static/style.css" in page
    for text in (page, c.get("/static/app.js").text, c.get("/static/style.css").text):
        assert "http://" not in text.replace("http://127.0.0.1", "") and "https://" not in text and "//cdn" not in text
    assert c.get("/openapi.json").json()["paths"]["/api/runs/{run}/edit"]["post"]["summary"].startswith("set attributes")
    docs = c.get("/docs").text  # FastAPI's Swagger UI page, its files served from here
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "https://" not in docs and "cdn" not in docs
    assert "validatorUrl" in docs and c.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert c.get("/docs-assets/core.py").status_code == 404 and c.get("/docs-assets/..%2F__init__.py").status_code == 404


def test_remote_clients_and_foreign_host_headers_are_refused_when_local(app):
    assert client(app, host="10.1.2.3").get("/api/runs").status_code == 403
    r = client(app, base="http://attacker.example").get("/api/runs")
    assert r.status_code == 403 and "DNS-rebinding" in r.json()["detail"]
    assert client(app, base="http://localhost:7860").get("/api/runs").status_code == 200
    c = client(app)
    r = c.post("/api/runs/0/images", content=png_bytes(), headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.json()["detail"]
    assert c.post("/api/runs/0/examples/0", headers={"Origin": "http://127.0.0.1:7860"}).status_code == 200
    r = c.post("/api/runs/0/edit", content=b"{" + b" " * 70000 + b"}", headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "capped at 65,536" in r.json()["detail"]
    assert c.get("/api/runs/%C2%B2").status_code == 404  # '²'.isdigit() is True, int('²') is not a number
    assert client(app, host="::1", base="http://[::1]:7860").get("/api/runs").status_code == 200


def test_concurrent_clients_each_get_their_own_edit(app, runs):
    c = client(app)
    rid = run_id(c, "mdd")
    images = [c.post(f"/api/runs/{rid}/examples/{k}").json()["id"] for k in range(4)]
    jobs = [(images[k % 4], round(-0.5 + 0.25 * k, 2)) for k in range(12)]
    want = {job: c.post(f"/api/runs/{rid}/edit", json={"image": job[0], "values": {"Smiling": job[1]}}).json()["image"]
            for job in jobs}
    got, errors = {}, []

    def worker(job):
        try:
            for _ in range(5):
                r = client(app).post(f"/api/runs/{rid}/edit", json={"image": job[0], "values": {"Smiling": job[1]}})
                got.setdefault(job, set()).add(r.json()["image"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(got[job] == {want[job]} for job in jobs)


# --- the model hooks the controls come from ---------------------------------------------------------------


def test_edit_many_sets_every_attribute_in_one_decode(faces):
    x = faces.images_at([0, 1])
    ifc = fk.models.build("ifcvae-gan", faces, seed=0, attributes=("Smiling", "Bangs"))
    code = ifc.encode(x).with_part("Smiling", torch.full((2, 1), 0.9)).with_part("Bangs", torch.full((2, 1), 0.1))
    assert torch.allclose(ifc.edit_many(x, {"smiling": 0.9, "Bangs": 0.1}), ifc.decode(code))
    assert torch.allclose(ifc.edit_many(x, {"Bangs": 0.1}), ifc.edit(x, "bangs", 0.1))
    assert ifc.attribute_values(x)["Bangs"].tolist() == ifc.encode(x)["Bangs"][:, 0].tolist()
    with pytest.raises(fk.errors.UsageError, match="trained to edit Smiling, Bangs, not 'Eyeglasses'"):
        ifc.edit_many(x, {"Eyeglasses": 1.0})
    dna = fk.models.build("dna-gan", faces, seed=0, attributes=ATTRS, width=4, piece_channels=2, schedule="joint")
    dna.prototype_count.fill_(1.0)
    dna.prototypes.normal_()
    assert torch.allclose(dna.edit_many(x, {"Eyeglasses": 0.7}), dna.edit(x, "Eyeglasses", 0.7), atol=1e-6)
    assert torch.allclose(dna.edit_many(x, {"Bangs": 0}), dna.edit(x, "Bangs", 0.0))


def test_dna_gan_reads_a_piece_on_the_line_its_edit_draws(faces):
    dna = fk.models.build("dna-gan", faces, seed=0, attributes=ATTRS, width=4, piece_channels=2, schedule="joint")
    x = faces.images_at([0, 1, 2])
    assert dna.attribute_values(x) == {}  # no prototype yet: no reading
    dna.prototype_count.fill_(1.0)
    dna.prototypes.normal_()
    h = dna._latent(x)
    j = ATTRS.index("Eyeglasses")
    on = dna.prototypes[j]
    for v in (0.0, 0.4, 1.0, 1.6):  # a piece v·on (annihilation's off is 0) reads v
        hv = dna.with_piece(h, j, v * on)
        with torch.no_grad():
            read = ((hv[:, dna.piece(j)]).flatten(1) * on.flatten()).sum(1) / on.pow(2).sum()
        assert torch.allclose(read, torch.full((3,), v), atol=1e-5)
    dna._latent = lambda images: hv  # the reading goes through _latent
    assert torch.allclose(dna.attribute_values(x)["Eyeglasses"], torch.full((3,), 1.6), atol=1e-5)


def test_set_dimensions_agrees_with_traverse(faces):
    ae = fk.models.build("ae", faces, seed=0, latent_dim=4)
    x = faces.images_at([0, 1])
    assert torch.allclose(ae.set_dimensions(x, {2: 1.5}), ae.traverse(x, 2, [1.5])[:, 0])
    with pytest.raises(fk.errors.UsageError, match="dimension 4 out of range 0..3"):
        ae.set_dimensions(x, {4: 0.0})


# --- the command line ---------------------------------------------------------------------------------


def test_serve_refuses_bad_folders_and_ports(runs, tmp_path, capsys):
    assert main(["serve", str(tmp_path / "none")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["serve", str(tmp_path)]) == 2
    assert "no factorkit runs here" in capsys.readouterr().err
    assert main(["serve", str(runs / "mdd"), "--port", "70000"]) == 2
    assert "--port 70000: give 1..65535" in capsys.readouterr().err
    assert main(["serve", str(runs / "mdd"), "--host", "no-such-host.invalid"]) == 2
    assert "not an address of this machine" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert main(["serve", str(runs / "mdd"), "--port", str(s.getsockname()[1])]) == 2
        assert "pass another --port" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outside_address() -> str | None:
    """This machine's address on a non-loopback interface, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outgoing interface
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def wait_listening(port: int, proc, timeout: float = 60) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the server did not start")


def test_the_default_bind_takes_connections_on_127_0_0_1_only(runs):
    address = outside_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to try")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "factorkit", "serve", str(runs / "mdd"), "--port", str(port), "--judge", "off"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        import httpx

        assert httpx.get(f"http://127.0.0.1:{port}/api/runs").json() == [{"id": "0", "name": "mdd"}]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, port), timeout=2).close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_class_datasets_get_one_class_at_a_time(tmp_path):
    ds = fk.data.load("sklearn-digits", "train")
    fk.train(fk.models.build("mddae", ds, seed=0), ds, steps=2, out=tmp_path / "digits", batch_size=8, num_workers=0,
             progress=False, checkpoint_every=0, image_every=0)
    app = create_app(tmp_path / "digits")  # judge auto: scikit-learn's digits are not procedural, so none
    c = client(app)
    spec = c.get("/api/runs/0").json()
    assert spec["edit"]["kind"] == "classes" and spec["edit"]["controls"][3] == {"name": "digit_3", "lo": 0.0, "hi": 1.0}
    assert not spec["judge"] and "procedural datasets only" in spec["notes"][0]
    image = c.post("/api/runs/0/examples/0").json()
    assert image["reading"] is None and len(image["values"]) == 10
    model = fk.load(tmp_path / "digits")
    x = torch.from_numpy(png_of(image["image"]).astype(np.float32) / 255)[None, None]
    r = c.post("/api/runs/0/edit", json={"image": image["id"], "values": {"digit_3": 1}})
    assert np.array_equal(png_of(r.json()["image"]), as_png(model.edit(x, "digit_3", 1.0)[0])[..., 0])
    r = c.post("/api/runs/0/edit", json={"image": image["id"], "values": {"digit_3": 0.5}})
    assert r.status_code == 400 and "use value=1" in r.json()["detail"]


def test_edit_output_is_chosen_at_serve_time_for_runs_that_have_it(runs, capsys):
    judge = StubJudge(fk.data.load("faces", "test", size=240).info)
    c = client(create_app(runs / "dna", judge=judge, edit_output="residual"))
    rid = run_id(c, "dna")
    model = fk.load(runs / "dna")
    a = c.post(f"/api/runs/{rid}/examples/2").json()
    xa = torch.from_numpy(png_of(a["image"]).astype(np.float32) / 255).permute(2, 0, 1)[None]
    r = c.post(f"/api/runs/{rid}/edit", json={"image": a["id"], "values": {"Bangs": 0}})
    want = (xa + model.edit(xa, "Bangs", 0.0) - model.reconstruct(xa)).clamp(0, 1)  # input + the decoder's change
    assert np.array_equal(png_of(r.json()["image"]), as_png(want[0]))
    assert not np.array_equal(as_png(want[0]), as_png(model.edit(xa, "Bangs", 0.0)[0]))
    # a folder whose runs do not all have the switch is refused at start, naming the run
    with pytest.raises(fk.errors.UsageError, match=r"the run \S*bvae: betavae has no edit_output switch"):
        create_app(runs, judge=judge, edit_output="residual")
    assert main(["serve", str(runs / "dna"), "--edit-output", "blurred", "--port", str(free_port())]) == 2
    assert "returns its edits as one of decoded, residual, masked" in capsys.readouterr().err

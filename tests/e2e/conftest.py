"""The real kiosk shell in a real X window (Xvfb), pressed with real X mouse clicks (xdotool), read through its
automation endpoint, and photographed."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest
import yaml

from drivers.camera import synthetic as synth
from drivers.sim.control import send_command
from drivers.sim.process import ManagedProcess, SimulatorProcess
from kiosk.display import Xvfb
from tests.e2e.printed_links import PRINTED_LINES, KioskLinks, PrintedLinks

if TYPE_CHECKING:
    from tests.conftest import PlatformServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def xvfb() -> Iterator[Xvfb]:
    if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
        pytest.fail("Xvfb and xdotool are required (make setup installs them)")
    display = Xvfb(1920, 1920)  # square: room for the landscape and the portrait layouts
    try:
        yield display
    finally:
        display.stop()


class KioskUI:
    """Drive a running kiosk shell like a person: look at the screen, press buttons."""

    def __init__(self, proc: ManagedProcess, display: str, shots: Path) -> None:
        self.proc = proc
        self.display = display
        self.address = proc.endpoints["automation"]
        self.shots = shots

    def ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        reply = send_command(self.address, cmd, timeout=15, **args)
        assert reply.get("ok"), reply
        return reply

    def state(self) -> dict[str, Any]:
        return self.ask("state")

    def texts(self) -> list[str]:
        return self.ask("texts")["texts"]

    def find(self, aid: str) -> dict[str, Any]:
        return self.ask("find", aid=aid)

    def settled(self, aid: str, wait: Callable[..., Any], timeout: float = 15) -> dict[str, Any]:
        """The widget named ``aid`` once it is visible, enabled and laid out: the same place and size three times in
        a row (a widget just added is placed on the next frame; a list moves once its data arrived)."""
        seen: list[tuple[Any, ...]] = []

        def still() -> dict[str, Any] | None:
            f = self.find(aid)
            if not f["found"] or f["disabled"]:
                seen.clear()
                return None
            seen.append((f["x"], f["y"], f.get("width"), f.get("height")))
            return f if len(seen) >= 3 and len(set(seen[-3:])) == 1 else None

        return wait(still, timeout=timeout, what=f"{aid} visible, enabled and laid out")

    def tap(self, aid: str, wait: Callable[..., Any]) -> None:
        """Press the widget named ``aid`` with a real X click once it is :meth:`settled`."""
        where = self.settled(aid, wait)
        subprocess.run(["xdotool", "mousemove", str(where["x"]), str(where["y"]), "click", "1"],
                       env={**os.environ, "DISPLAY": self.display}, check=True, timeout=10)

    def top_most(self, prefix: str, wait: Callable[..., Any], timeout: float = 30) -> str:
        """The aid of the top-most button on screen whose aid starts with ``prefix`` (a list's first entry), once
        the list is laid out (the same answer twice in a row)."""
        last: list[str] = []

        def top() -> str | None:
            aids = [b["aid"] for b in self.ask("buttons")["buttons"] if b["aid"].startswith(prefix)]
            first = min(aids, key=lambda aid: self.find(aid).get("y", 1 << 30)) if aids else ""
            stable = bool(first) and last[-1:] == [first]
            last.append(first)
            return first if stable else None

        return wait(top, timeout=timeout, what=f"a {prefix}… button")

    def wait_screen(self, name: str, wait: Callable[..., Any], timeout: float = 15) -> None:
        wait(lambda: self.state()["screen"] == name, timeout=timeout, what=f"screen {name}")

    def wait_text(self, fragment: str, wait: Callable[..., Any], timeout: float = 15) -> str:
        return wait(lambda: next((t for t in self.texts() if fragment in t), None), timeout=timeout,
                    what=f"text containing {fragment!r}")

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.ask("screenshot", path=str(path))
        assert path.exists() and path.stat().st_size > 10_000, f"screenshot {path} missing or empty"
        return path

    def simulators(self, wait: Callable[..., Any]) -> dict[str, Any]:
        # the card reader and the printer at least (the profile may simulate more devices)
        return wait(lambda: (lambda s: s if {"idcard", "receipt_printer"} <= set(s) else None)(
            {k: v for k, v in self.ask("simulators").items() if k != "ok"}), what="simulators started")


PRINTED_LINKS = pytest.StashKey[PrintedLinks]()


@pytest.fixture(scope="session")
def printed_links(request: pytest.FixtureRequest) -> PrintedLinks:
    """The session's collector of every QR link the e2e kiosks printed (tests/e2e/printed_links.py)."""
    collector = PrintedLinks()
    request.config.stash[PRINTED_LINKS] = collector
    return collector


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The tallies go to the summary tests/conftest.py prints: from a pytest-xdist worker by way of the controller."""
    collector = session.config.stash.get(PRINTED_LINKS, None)
    if collector is None:
        return
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["printed_links"] = collector.summary()
    else:
        session.config.stash.setdefault(PRINTED_LINES, []).extend(collector.summary())


@pytest.fixture
def start_kiosk(xvfb: Xvfb, make_profile, output_dir: Path, tmp_path: Path, printed_links: PrintedLinks,
                request: pytest.FixtureRequest) -> Iterator[Callable[..., KioskUI]]:
    """``start_kiosk(**profile_overrides)`` → a running kiosk shell. At teardown, before each kiosk is stopped (and
    while the test's platform is still up), every QR code it printed is opened (:class:`PrintedLinks`); a link that
    does not answer 200 fails the test."""
    procs: list[ManagedProcess] = []

    def start(**profile_overrides: Any) -> KioskUI:
        profile = make_profile(**profile_overrides)
        env = {"DISPLAY": xvfb.display, "KIVY_HOME": str(tmp_path / "kivy-home"), "KIVY_NO_ARGS": "1",
               "KIVY_NO_FILELOG": "1", "KIVY_LOG_MODE": "PYTHON"}
        proc = ManagedProcess([sys.executable, "-m", "screens.cli", "run", "--profile", str(profile), "--windowed",
                               "--automation", "127.0.0.1:0"], "kiosk", start_timeout=60, env=env)
        procs.append(proc)
        return KioskUI(proc, xvfb.display, output_dir)

    checked: list[tuple[int, KioskLinks]] = []
    try:
        yield start
    finally:
        try:
            for number, proc in enumerate(procs, start=1):   # a kiosk that already left is counted as unread
                checked.append((number, printed_links.check(proc.endpoints["automation"], request.module.__name__)))
        finally:
            for proc in procs:
                proc.stop(timeout=15)
    for number, found in checked:
        assert not found.dead, f"kiosk {number} printed QR links that do not answer 200: {found.dead}"


# --- 人证核验: a simulated camera showing the card holder's face, a platform that knows that face ------------------------
#
# Since identity levels (service_platform/levels.py, kiosk/identity_levels.py) a card-only session may read guides, its
# own progress and book appointments; applying, paying, e-certificates and EMS delivery need the holder confirmed
# (card+face). A kiosk with a ``camera`` runs the face check after the card, so the journeys that reach those services
# do what a real kiosk does: ``kiosk-sim camera`` plays a clip of the holder (a packaged face photo that blinks — built
# at test time, tests/data/README.md), the platform's registered photo of every simulated card holder is that same
# face, and the check passes on its own once the face is matched and the liveness request answered.

#: the clip's face (the holder) and someone else's (an impostor), packaged photos (drivers/camera/samples.py)
HOLDER_PHOTO, OTHER_PHOTO = "astronaut", "grace_hopper"
#: look, blink, look, turn to the citizen's left and back, look (~4.6 s, looped): answers blink and turn_left
LIVE_SCRIPT = (synth.Gesture("still", 1.0), synth.Gesture("blink", 0.5), synth.Gesture("still", 0.8),
               synth.Gesture("turn_left", 1.4), synth.Gesture("still", 0.9))
#: look, a slow blink, look (2.4 s, looped): answers a blink request within ~2.4 s wherever the loop is; the eyes stay
#: shut long enough to be seen even when a busy machine analyses only a few frames a second
BLINK_SCRIPT = (synth.Gesture("still", 0.6), synth.Gesture("blink", 1.2), synth.Gesture("still", 0.6))
#: the profile's face block for journeys that only need to get past the check: one liveness request (blink) instead
#: of the defaults' two (blink and turn, kiosk/face/config.py), so a passing check takes a few seconds; the limits
#: stay generous (they cost nothing when the check passes, and a loaded test machine analyses frames slowly)
QUICK_FACE = {"challenges": ["blink"], "max_attempts": 3, "attempt_timeout_s": 30,
              "liveness": {"step_timeout_s": 10}}
#: what a locked menu tile says (kiosk/locales/zh_CN/identity.yaml: needs_face, needs_face_no_camera)
NEEDS_FACE = "需要人脸核验"


class FaceClips:
    """Clips of the holder (and of another person) for the camera simulator, each built on first use, once per
    session: ``live`` (blinks and turns left), ``blink`` (blinks), ``spoof`` (the holder's photo held up),
    ``impostor`` (another person blinking)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._bases: dict[str, tuple[Any, Any]] | None = None
        self._clips: dict[str, Path] = {}

    def _faces(self) -> dict[str, tuple[Any, Any]]:
        """Each photo's face placed in a camera frame, with its 68 landmarks (the gestures move them)."""
        if self._bases is None:
            from drivers.camera.samples import load_sample_photo
            from kiosk.face.worker import FaceWorker

            bases = {}
            with FaceWorker() as worker:
                for who, name in (("holder", HOLDER_PHOTO), ("other", OTHER_PHOTO)):
                    photo = load_sample_photo(name)
                    box = worker.analyze(photo, reference=True, landmarks=False).faces[0]
                    frame = synth.place_face(photo, box.css())
                    bases[who] = (frame, worker.analyze(frame).landmarks)
            self._bases = bases
        return self._bases

    def __getitem__(self, name: str) -> Path:
        if name not in self._clips:
            holder, other = self._faces()["holder"], self._faces()["other"]
            frames = {"live": lambda: synth.live_frames(*holder, LIVE_SCRIPT),
                      "blink": lambda: synth.live_frames(*holder, BLINK_SCRIPT),
                      "spoof": lambda: synth.photo_frames(holder[0], 4.0),
                      "impostor": lambda: synth.live_frames(*other, LIVE_SCRIPT[:2])}[name]
            self._clips[name] = synth.write_clip(self.folder / f"{name}.avi", frames())
        return self._clips[name]


@pytest.fixture(scope="session")
def face_clips(tmp_path_factory: pytest.TempPathFactory) -> FaceClips:
    """``face_clips["live" | "blink" | "spoof" | "impostor"]`` → the clip's path (built once per session)."""
    return FaceClips(tmp_path_factory.mktemp("face-clips"))


def registered_photos() -> dict[str, str]:
    """Every simulated card holder's registered photo (ID number → image file): the face the clips show."""
    from drivers.camera.samples import sample_photo_path
    from drivers.idcard.simulator import load_identities

    holder = str(sample_photo_path(HOLDER_PHOTO))
    return {doc.id_number: holder for doc in load_identities().values()}


def write_photo_map(folder: Path) -> Path:
    """A platform photo map (``service-platform serve --photos`` / env ``PLATFORM_PHOTOS``) with
    :func:`registered_photos`, for a test that starts its own platform."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "photos.yaml"
    path.write_text(yaml.safe_dump({"identities": registered_photos()}), "utf-8")
    return path


@pytest.fixture(scope="session")
def face_platform(make_platform_server) -> "PlatformServer":
    """The reference platform whose registered photos are the clips' face for every simulated card holder."""
    return make_platform_server(photos=registered_photos())


@pytest.fixture(scope="session")
def platform_server(face_platform: "PlatformServer") -> "PlatformServer":
    """The e2e tests' shared platform (``make_profile`` points kiosks at it) is :func:`face_platform`: a kiosk with
    a camera can confirm any simulated card holder; card-only kiosks never ask for a photo."""
    return face_platform


@pytest.fixture
def camera_clip() -> str:
    """Which of :class:`FaceClips` ``camera_sim`` plays first (a module overrides this fixture to change it)."""
    return "blink"


@pytest.fixture
def camera_sim(face_clips: FaceClips, camera_clip: str) -> Iterator[SimulatorProcess]:
    """``kiosk-sim camera`` (MJPEG over HTTP, read by the real OpenCV driver as an IP camera) playing the holder's
    clip; ``camera_sim.control("set_source", path=…)`` shows another clip or a folder of pages."""
    sim = SimulatorProcess("camera", "--video", str(face_clips[camera_clip]), "--tcp", "127.0.0.1:0")
    try:
        yield sim
    finally:
        sim.stop()


def start_with_camera(start_kiosk: Callable[..., KioskUI], camera_sim: SimulatorProcess,
                      face: dict[str, Any] | None = None, **profile_overrides: Any) -> KioskUI:
    """A kiosk whose profile has ``camera_sim`` as its camera (so the face check runs after the card) and the
    ``face`` block given (default :data:`QUICK_FACE`); other profile overrides as ``start_kiosk`` takes them."""
    return start_kiosk(devices__camera={"driver": "opencv", "settings": {"source": camera_sim.endpoints["url"]}},
                       face=QUICK_FACE if face is None else face, **profile_overrides)


def agree_to_face_check(ui: KioskUI, wait_for: Callable[..., Any], timeout: float = 30) -> None:
    """After the card: the consent screen (what is captured, why, nothing kept) comes before any camera; the citizen
    agrees with one tap and the face check screen opens."""
    ui.wait_screen("face_consent", wait_for, timeout=timeout)
    ui.tap("consent_agree", wait_for)
    ui.wait_screen("face_check", wait_for)


def pass_face_check(ui: KioskUI, wait_for: Callable[..., Any], timeout: float = 90) -> None:
    """After the card: the consent screen (one tap: agree, :func:`agree_to_face_check`), then the face check screen
    comes, the citizen looks and does what is asked (the clip), the check
    passes by itself and the menu opens with nothing locked (card+face). An attempt that ends in "try again" (on a
    busy machine a request can time out before enough frames were analysed) is tried again, as the citizen would;
    fails saying what the screen said if the check offers another route or takes longer than ``timeout``."""
    _card_taken(ui, wait_for)
    seen: list[str] = []

    def passed() -> bool:
        screen = ui.state()["screen"]
        if screen == "menu":
            return True
        if screen == "face_consent":
            agree_to_face_check(ui, wait_for)
            return False
        prompt = ui.find("face_prompt")
        if prompt.get("found") and prompt["text"] and prompt["text"] not in seen:
            seen.append(prompt["text"])
        retry = ui.find("face_retry")
        if retry.get("found") and not retry["disabled"]:
            ui.tap("face_retry", wait_for)
            seen.append("(tried again)")
        elif any("多次核验未通过" in t for t in ui.texts()):
            pytest.fail(f"the face check did not pass (prompts: {seen}; screen: {ui.texts()})")
        return False

    wait_for(passed, timeout=timeout, interval=0.1, what=f"the face check to pass (prompts so far: {seen})")
    locked = [t for t in ui.texts() if NEEDS_FACE in t]
    assert not locked, f"the menu after a passed face check still locks services: {locked}"


def _card_taken(ui: KioskUI, wait_for: Callable[..., Any], patience: float = 12, tries: int = 3) -> None:
    """Wait for the kiosk to leave the attract screen after the card was placed. A read that failed (the reader
    answered too late: "设备无响应，请重试" on the attract screen, seen on a loaded test machine while the kiosk is still
    starting up) is not retried while the card stays put; like the citizen told to try again, take the card away
    and place it once more."""
    import time

    for attempt in range(tries):
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            if ui.state()["screen"] != "attract":
                return
            time.sleep(0.1)
        if attempt == tries - 1:
            break
        control = ui.simulators(wait_for)["idcard"]["control"]
        card = send_command(control, "status").get("card")
        assert card, "no card on the reader"
        send_command(control, "remove_card")
        time.sleep(1.5)   # the reader sees it gone (a few polls), then the card comes back
        send_command(control, "place_card", identity=card)
    pytest.fail(f"the card was not taken after {tries} tries (screen: {ui.texts()})")

"""Face verification figures on this machine (printed; targets from shared/README.md).

    .venv/bin/python bench/face_bench.py [--attempts 20] [--sessions 200]

* model load: ``import face_recognition`` + models in a fresh worker process, and process start + load as the
  kiosk waits for it (the shell never does: it warms up in the background);
* per 640×480 frame (in-process engine): HOG detection (upsample 0 and 1), 68 landmarks, one encoding;
* attempt "look → decision" (target p95 < 0.5 s, gestures excluded), through the real path — clip → OpenCV camera
  driver → worker process → verifier: the match decision (first frame with a face → decided, measured on an
  impostor clip: it ends there) and the final decision (first frontal frame after the gestures → decided);
* memory: resident set of this process (the kiosk side: camera + verifier) and of the worker with models loaded,
  then again after ``--sessions`` face sessions (prepare reference → one attempt → wipe): it must stay flat.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.camera import synthetic  # noqa: E402
from drivers.camera.opencv_camera import OpenCvCamera  # noqa: E402
from drivers.camera.samples import load_sample_photo  # noqa: E402
from kiosk.face.config import FaceSettings  # noqa: E402
from kiosk.face.engine import FaceEngine  # noqa: E402
from kiosk.face.liveness import LivenessSettings  # noqa: E402
from kiosk.face.policy import FaceSession  # noqa: E402
from kiosk.face.verifier import FaceVerifier  # noqa: E402
from kiosk.face.worker import FaceWorker  # noqa: E402


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def show(name: str, values: list[float], unit: str = "ms", scale: float = 1000.0) -> None:
    v = [x * scale for x in values]
    print(f"  {name:<44} n={len(v):3d}  p50 {pct(v, 50):7.1f} {unit}  p95 {pct(v, 95):7.1f} {unit}  "
          f"max {max(v):7.1f} {unit}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--cold", type=int, default=5, help="cold starts for the first-check figures")
    args = parser.parse_args(argv)
    with open("/proc/loadavg") as f:
        print(f"face bench — {Path('/proc/cpuinfo').read_text().count('processor')} CPUs, load average "
              f"{f.read().split()[0]} at start")

    # model load --------------------------------------------------------------------------------------------------------
    print("\nmodel load")
    loads, starts = [], []
    for _ in range(3):
        with FaceWorker() as w:
            w.load()
            loads.append(w.load_seconds)
            starts.append(w.start_seconds)
    show("models in the worker (import + load)", loads, "s", 1)
    show("worker process start + load (wait, cold)", starts, "s", 1)

    # attempts ----------------------------------------------------------------------------------------------------------
    settings = FaceSettings(attempt_timeout_s=20, liveness=LivenessSettings(step_timeout_s=6))
    verifier = FaceVerifier(settings)
    t = time.perf_counter()
    verifier.warm_up().result()
    print(f"\nverifier warm-up (background in the kiosk): {time.perf_counter() - t:.2f} s")
    holder, other = load_sample_photo("astronaut"), load_sample_photo("grace_hopper")
    box = verifier.worker.analyze(holder, reference=True, landmarks=False).faces[0]
    frame = synthetic.place_face(holder, box.css())
    rng = np.random.default_rng(1)
    frames = [synthetic.sensor_noise(frame, rng) for _ in range(30)]
    ipc = []
    for f in frames:
        t = time.perf_counter()
        verifier.worker.analyze(f, encode=True)
        ipc.append(time.perf_counter() - t)
    show("worker request incl. IPC (detect+lm+encode)", ipc)
    with tempfile.TemporaryDirectory() as tmp:
        lms = verifier.worker.analyze(frame).landmarks
        obox = verifier.worker.analyze(other, reference=True, landmarks=False).faces[0]
        oframe = synthetic.place_face(other, obox.css())
        live = synthetic.write_clip(Path(tmp) / "live.avi", synthetic.live_frames(frame, lms, (
            synthetic.Gesture("still", 0.8), synthetic.Gesture("blink", 0.5), synthetic.Gesture("still", 0.7),
            synthetic.Gesture("turn_left", 1.4), synthetic.Gesture("still", 1.2))))
        impostor = synthetic.write_clip(Path(tmp) / "impostor.avi", synthetic.still_frames(oframe, 2.0))
        reference = verifier.prepare_reference(cv2.imencode(".jpg", holder)[1].tobytes())
        mismatch, match, final, durations, outcomes = [], [], [], [], {}
        for _ in range(args.attempts):
            with OpenCvCamera(source=str(impostor), fps=25) as cam:
                r = verifier.verify(reference, cam)
            outcomes[r.reason_code] = outcomes.get(r.reason_code, 0) + 1
            if r.decision_latency_s is not None:
                mismatch.append(r.decision_latency_s)
            with OpenCvCamera(source=str(live), fps=25) as cam:
                r = verifier.verify(reference, cam, challenges=("blink", "turn_left"))
            outcomes[r.reason_code] = outcomes.get(r.reason_code, 0) + 1
            if r.reason_code == "ok":
                match.append(r.match_latency_s)
                final.append(r.decision_latency_s)
                durations.append(r.duration_s)
        print(f"\nattempts through camera → worker → verifier ({args.attempts} impostor + {args.attempts} live): "
              f"{outcomes}")
        show("look → decision: mismatch (impostor)", mismatch)
        show("look → match decision (holder)", match)
        show("look → final decision after gestures", final)
        show("whole live attempt incl. gestures", durations, "s", 1)
        allowed = mismatch + final
        print(f"  target p95 < 500 ms (look → decision, gestures excluded): p95 {pct(allowed, 95) * 1000:.0f} ms "
              f"→ {'met' if pct(allowed, 95) < 0.5 else 'NOT met'}")

        # the first citizen after boot ----------------------------------------------------------------------------------
        # As the kiosk does it: a new verifier (new worker process) whose warm_up() starts at boot, in the background;
        # the first citizen's check begins once the attract screen is up and the card read (here: as soon as warm-up
        # has finished, the earliest moment it can). Their look → decision is compared with the steady state's.
        first_mismatch, first_final, ready = [], [], []
        card_png = cv2.imencode(".jpg", holder)[1].tobytes()
        for _ in range(args.cold):
            t = time.perf_counter()
            cold = FaceVerifier(settings)
            cold.warm_up().result()
            ready.append(time.perf_counter() - t)
            ref = cold.prepare_reference(card_png)
            with OpenCvCamera(source=str(impostor), fps=25) as cam:
                r = cold.verify(ref, cam)
            if r.decision_latency_s is not None:
                first_mismatch.append(r.decision_latency_s)
            cold.close()
            cold = FaceVerifier(settings)
            cold.warm_up().result()
            ref = cold.prepare_reference(card_png)
            with OpenCvCamera(source=str(live), fps=25) as cam:
                r = cold.verify(ref, cam, challenges=("blink", "turn_left"))
            if r.reason_code == "ok":
                first_final.append(r.decision_latency_s)
            cold.close()
        print(f"\nfirst check after a cold start ({args.cold} boots each; models loaded in the background at boot)")
        show("boot → worker ready (process start + load)", ready, "s", 1)
        show("first check: look → decision, mismatch", first_mismatch)
        show("first check: look → final decision", first_final)
        first = first_mismatch + first_final
        print(f"  target p95 < 500 ms for the first check too: p95 {pct(first, 95) * 1000:.0f} ms "
              f"→ {'met' if pct(first, 95) < 0.5 else 'NOT met'} (steady state p95 {pct(allowed, 95) * 1000:.0f} ms)")

        # UI-thread stalls ----------------------------------------------------------------------------------------------
        def main_thread_gaps(work) -> tuple[float, float]:
            """Run ``work`` on a thread while this (the "UI") thread ticks every 1 ms; p99 and max tick gap."""
            done = threading.Event()

            def run() -> None:
                try:
                    work()
                finally:
                    done.set()

            threading.Thread(target=run, daemon=True).start()
            gaps, last = [], time.perf_counter()
            while not done.is_set():
                time.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now
            return pct(gaps, 99) * 1000, max(gaps) * 1000

        def attempts_in_worker() -> None:
            for _ in range(3):
                with OpenCvCamera(source=str(live), fps=25) as cam:
                    verifier.verify(reference, cam, challenges=("blink", "turn_left"))

        p99, worst = main_thread_gaps(attempts_in_worker)
        print(f"\nUI-thread stalls (1 ms tick loop) while verifying: p99 {p99:.1f} ms, max {worst:.1f} ms "
              f"(models in the worker process)")

        # memory --------------------------------------------------------------------------------------------------------
        kiosk0, worker0 = rss_mb(), rss_mb(verifier.worker.pid)
        print(f"\nmemory with models loaded (no model in this process): kiosk side {kiosk0:.0f} MB + worker {worker0:.0f} MB = "
              f"{kiosk0 + worker0:.0f} MB (target < 500 MB)")
        card = cv2.imencode(".jpg", cv2.resize(holder[40:360, 120:380], (102, 126)))[1].tobytes()
        t = time.perf_counter()
        with OpenCvCamera(source=str(impostor), fps=25) as cam:
            for i in range(args.sessions):
                session = FaceSession(verifier, card)
                session.attempt(cam, deadline=time.monotonic() + 3)
                session.wipe()
                if i + 1 in (args.sessions // 4, args.sessions // 2, args.sessions):
                    print(f"  after {i + 1:4d} sessions: kiosk side {rss_mb():.0f} MB, worker "
                          f"{rss_mb(verifier.worker.pid):.0f} MB")
        print(f"  ({args.sessions} sessions in {time.perf_counter() - t:.0f} s)")

        # per frame, in-process (last: it loads a second copy of the models into this process) ---------------------
        engine = FaceEngine()
        engine.load()
        print("\nper 640×480 frame, in-process (what the worker does per request)")
        for up in (0, 1):
            det = []
            for f in frames:
                a = engine.analyze(f, upsample=up, landmarks=False)
                det.append(a.timings["detect"])
            show(f"HOG detection, upsample={up}", det)
        lm, enc, total = [], [], []
        for f in frames:
            a = engine.analyze(f, encode=True)
            lm.append(a.timings["landmarks"])
            enc.append(a.timings["encode"])
            total.append(a.timings["total"])
        show("68 landmarks", lm)
        show("encoding (face_recognition, 1 jitter)", enc)
        show("detect + landmarks + encode (one request)", total)

        def dlib_in_thread() -> None:
            for f in frames[:15]:
                engine.analyze(f, encode=True)

        p99, worst = main_thread_gaps(dlib_in_thread)
        print(f"\nfor comparison, dlib on a thread of this process (not how the kiosk runs it): UI-thread stalls "
              f"p99 {p99:.1f} ms, max {worst:.1f} ms (it holds the GIL)")
    verifier.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

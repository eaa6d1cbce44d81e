#!/usr/bin/env python3
"""DICOM networking benchmarks (benches/dicom_network.sh builds the release binary first).

1. Receive throughput: a simulated 4-series study sent by dcmtk's storescu over loopback to
   `ismf run`'s receiver and to dcmtk's storescp, interleaved (A B A B ...), a fresh study per
   round so that neither side sees duplicates; instances/s and MB/s, median of the rounds.
2. Peak RSS while one ~100 MB Enhanced MR multi-frame instance is received (VmRSS sampled every
   10 ms), above the idle RSS just before the transfer.
3. Send latency of a study's results (SR, SC, KOS) to Orthanc: from the moment the results are
   queued to Orthanc's success status, from the appliance's log.

Prints the machine and Markdown tables for BENCHMARKS.md.
Usage: benches/dicom_network.sh [ROUNDS]   (default 5)
"""
import json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/ismf")
CARD = os.path.join(ROOT, "models/model-card.json")
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def config(tmp, port, extra=""):
    path = os.path.join(tmp, "appliance.toml")
    with open(path, "w") as f:
        f.write(f"""[appliance]
id = "bench"
[ingest]
watch_dir = "{tmp}/incoming"
state_dir = "{tmp}/state"
quarantine_dir = "{tmp}/quarantine"
stable_seconds = {600.0 if not extra else 2.0}
force_after_seconds = 1200.0
[mqtt]
url = "mqtt://127.0.0.1:{free_port()}"
[model]
card = "{CARD}"
threads = 1
[results]
explain = {"true" if extra else "false"}
[dicom]
listen = "127.0.0.1:{port}"
allowed_callers = ["STORESCU", "ORTHANC"]
{extra}
""")
    return path


def storescu(port, ae, path):
    t = time.perf_counter()
    subprocess.run(["storescu", "-aet", "STORESCU", "-aec", ae, "+sd", "+r", "127.0.0.1", str(port), path],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def size_and_count(path):
    files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".dcm")]
    return sum(os.path.getsize(f) for f in files), len(files)


def machine(tmp):
    cpu = subprocess.run("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2", shell=True,
                         capture_output=True, text=True).stdout.strip()
    mem = int(open("/proc/meminfo").read().split()[1]) / 1048576
    dcmtk = subprocess.run(["storescp", "--version"], capture_output=True, text=True).stdout.splitlines()
    return f"{os.cpu_count()} cores, {mem:.0f} GiB, {cpu}; {dcmtk[0] if dcmtk else 'dcmtk'}"


def throughput(tmp):
    studies = os.path.join(tmp, "studies")
    subprocess.run([BIN, "simulate", "--out", studies, "--studies", str(2 * ROUNDS), "--seed", "5",
                    "--layout", "series-dirs", "--distractors", "none"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dirs = sorted(os.path.join(studies, d) for d in os.listdir(studies)
                  if os.path.isdir(os.path.join(studies, d)))
    port_i, port_d = free_port(), free_port()
    log = open(os.path.join(tmp, "ismf.log"), "w")
    ismf = subprocess.Popen([BIN, "run", "--config", config(tmp, port_i)], stdout=subprocess.DEVNULL, stderr=log)
    out = os.path.join(tmp, "storescp-out")
    os.makedirs(out)
    # TCP_NODELAY=1: dcmtk 3.6.7 leaves Nagle's algorithm on unless told, and then waits ~40 ms
    # for a delayed ACK on every instance over loopback (22 instances/s here) — storescp's own
    # documented switch, so the comparison is against storescp at its best.
    dcmtk = subprocess.Popen(["storescp", "-aet", "STORESCP", "-od", out, "--fork", str(port_d)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "TCP_NODELAY": "1"})
    try:
        wait_port(port_i)
        wait_port(port_d)
        rows = {"ismf run (dicom-ul receiver)": [], "dcmtk storescp (TCP_NODELAY=1)": []}
        for r in range(ROUNDS):
            a, b = dirs[2 * r], dirs[2 * r + 1]
            # Alternate which goes first, so neither always has the warmer page cache.
            order = [("ismf run (dicom-ul receiver)", port_i, "ISMF", a), ("dcmtk storescp (TCP_NODELAY=1)", port_d, "STORESCP", b)]
            if r % 2:
                order.reverse()
            for name, port, ae, d in order:
                size, count = size_and_count(d)
                s = storescu(port, ae, d)
                rows[name].append((count / s, size / s / 1e6, count, size))
        return rows, ismf, log
    finally:
        dcmtk.kill()


def multiframe(tmp, ismf, port):
    path = os.path.join(tmp, "enhanced-mr.dcm")
    # A 100 MB Enhanced MR instance (256 x 256 x 800 frames, 16 bit), written with pydicom.
    code = r"""
import sys, numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
m = FileMetaDataset(); m.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
m.MediaStorageSOPInstanceUID = generate_uid(); m.TransferSyntaxUID = ExplicitVRLittleEndian
d = Dataset(); d.file_meta = m; d.SOPClassUID = m.MediaStorageSOPClassUID
d.SOPInstanceUID = m.MediaStorageSOPInstanceUID; d.StudyInstanceUID = generate_uid()
d.SeriesInstanceUID = generate_uid(); d.Modality = "MR"; d.PatientID = "BENCH"
d.Rows = 256; d.Columns = 256; d.NumberOfFrames = 800; d.SamplesPerPixel = 1
d.PhotometricInterpretation = "MONOCHROME2"; d.BitsAllocated = 16; d.BitsStored = 16
d.HighBit = 15; d.PixelRepresentation = 0
d.PixelData = (np.arange(256 * 256 * 800, dtype=np.uint32) % 4096).astype(np.uint16).tobytes()
try:
    d.save_as(sys.argv[1], enforce_file_format=True)
except TypeError:  # pydicom 2 (Debian 12)
    d.save_as(sys.argv[1], write_like_original=False)
"""
    subprocess.run(["/usr/bin/python3", "-c", code, path], check=True)
    size = os.path.getsize(path)
    time.sleep(2)
    idle = rss_kb(ismf.pid)
    proc = subprocess.Popen(["storescu", "-aet", "STORESCU", "-aec", "ISMF", "127.0.0.1", str(port), path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = idle
    t = time.perf_counter()
    while proc.poll() is None:
        peak = max(peak, rss_kb(ismf.pid))
        time.sleep(0.01)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit("storescu of the multi-frame instance failed")
    return size, idle, peak, seconds


def pacs_latency(tmp):
    orthanc_dir = os.path.join(tmp, "orthanc")
    os.makedirs(os.path.join(orthanc_dir, "db"))
    dport, hport, sport = free_port(), free_port(), free_port()
    with open(os.path.join(orthanc_dir, "orthanc.json"), "w") as f:
        json.dump({"Name": "bench", "StorageDirectory": orthanc_dir + "/db", "IndexDirectory": orthanc_dir + "/db",
                   "DicomAet": "ORTHANC", "DicomPort": dport, "HttpPort": hport, "RemoteAccessAllowed": False,
                   "AuthenticationEnabled": False, "Plugins": []}, f)
    orthanc = subprocess.Popen(["Orthanc", os.path.join(orthanc_dir, "orthanc.json")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    app = os.path.join(tmp, "pacs-app")
    os.makedirs(app)
    studies = os.path.join(tmp, "pacs-studies")
    n = 3
    subprocess.run([BIN, "simulate", "--out", studies, "--studies", str(n), "--seed", "9", "--layout", "series-dirs"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    extra = f'[pacs]\nhost = "127.0.0.1"\nport = {dport}\ncalled_ae = "ORTHANC"\n'
    log_path = os.path.join(app, "ismf.log")
    ismf = subprocess.Popen([BIN, "run", "--config", config(app, sport, extra)], stdout=subprocess.DEVNULL,
                            stderr=open(log_path, "w"), env={**os.environ, "RUST_LOG": "info"})
    try:
        wait_port(sport)
        wait_port(dport)
        for d in sorted(os.listdir(studies)):
            if os.path.isdir(os.path.join(studies, d)):
                storescu(sport, "ISMF", os.path.join(studies, d))
        end = time.time() + 300
        lat = []
        while time.time() < end:
            text = open(log_path).read()
            lat = [float(x) for x in re.findall(r'result stored in PACS.*?latency_ms="?(\d+)', text)]
            if len(lat) >= 3 * n:
                break
            time.sleep(0.5)
        return lat
    finally:
        ismf.terminate()
        orthanc.kill()


def main():
    tmp = tempfile.mkdtemp(prefix="ismf-dicom-bench-")
    try:
        print(f"machine: {machine(tmp)}")
        rows, ismf, log = throughput(tmp)
        print(f"\nReceive throughput, storescu → receiver over loopback, {ROUNDS} interleaved rounds (median):\n")
        print("| receiver | instances/s | MB/s | study (instances, MB) |")
        print("|---|---|---|---|")
        med = {}
        for name, r in rows.items():
            ips = statistics.median(x[0] for x in r)
            mbs = statistics.median(x[1] for x in r)
            med[name] = mbs
            print(f"| {name} | {ips:.0f} | {mbs:.1f} | {r[0][2]}, {r[0][3] / 1e6:.1f} |")
        names = list(rows)
        print(f"\nratio ismf / storescp (MB/s): {med[names[0]] / med[names[1]]:.2f}")
        port = int(re.search(r'listen = "127.0.0.1:(\d+)"', open(os.path.join(tmp, "appliance.toml")).read()).group(1))
        size, idle, peak, seconds = multiframe(tmp, ismf, port)
        ismf.terminate()
        ismf.wait()
        print(f"\nOne Enhanced MR instance of {size / 1e6:.0f} MB received in {seconds:.2f} s: "
              f"RSS idle {idle / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, **{(peak - idle) / 1024:.1f} MiB above idle**")
        lat = pacs_latency(tmp)
        if lat:
            lat.sort()
            print(f"\nResults to Orthanc ({len(lat)} objects of {len(lat) // 3} studies): queued → stored "
                  f"median {statistics.median(lat):.0f} ms, max {lat[-1]:.0f} ms")
        else:
            print("\nResults to Orthanc: none stored (see the log)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

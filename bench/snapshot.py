"""Helper for bench/snapshot: the huggingface_hub side of the comparison, and the table.

  snapshot.py upload REPO FOLDER   create_repo + upload_folder, prints the seconds they took
  snapshot.py download REPO        snapshot_download, prints "SECONDS SNAPSHOT_DIR"
  snapshot.py table SIZE_MB SMALL_FILES TOTAL_BYTES RUST_DOWN PY_DOWN RUST_UP PY_UP

upload and download read HF_ENDPOINT, HF_TOKEN and HF_HOME from the environment (set by
bench/snapshot) and time only the library call, with time.perf_counter, not the interpreter's
start-up or the import."""

import sys
import time


def upload(repo_id, folder):
    from huggingface_hub import HfApi

    api = HfApi()
    start = time.perf_counter()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=folder)
    print(f"{time.perf_counter() - start:.3f}")


def download(repo_id):
    from huggingface_hub import snapshot_download

    start = time.perf_counter()
    path = snapshot_download(repo_id)
    print(f"{time.perf_counter() - start:.3f} {path}")


def table(size_mb, small_files, total_bytes, rust_down, py_down, rust_up, py_up):
    mb = int(total_bytes) / 1e6
    rows = [("download (cold)", float(rust_down), float(py_down)), ("upload", float(rust_up), float(py_up))]
    print(f"\nsnapshot of {mb:.1f} MB: one {size_mb} MiB model.safetensors + {small_files} small files + config.json")
    head = ("", "hub-client s", "hub-client MB/s", "huggingface_hub s", "huggingface_hub MB/s", "speedup")
    fmt = "{:<16} {:>13} {:>16} {:>18} {:>21} {:>8}"
    print(fmt.format(*head))
    for name, rust, py in rows:
        print(fmt.format(name, f"{rust:.2f}", f"{mb / rust:.1f}", f"{py:.2f}", f"{mb / py:.1f}", f"{py / rust:.2f}×"))
    print("targets: download ≥ 2.0×, upload ≥ 1.5×")
    print("(speedup = huggingface_hub time / hub-client time; hub-client times include its process")
    print(" start-up, huggingface_hub times only the library call; best of BENCH_ROUNDS runs each,\n downloads from an empty cache, uploads into a fresh hub)")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"upload": upload, "download": download, "table": table}[cmd](*args)

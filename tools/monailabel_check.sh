#!/usr/bin/env bash
# A real MONAI Label server on packaged bundles: /info, /infer and /train on a transfer bundle and on an SSL bundle.
#
#   bash tools/monailabel_check.sh [WORK_DIR]          (default: .cache/monailabel_check; run from the repository root)
#
# Not run in CI: MONAI Label needs its own environment of several GB (monailabel 0.8.5 asks for monai[...] with
# torchvision, mlflow, openslide, sam2..., which replaces this project's torch 2.13.0 CPU build). The script
#   1. creates WORK_DIR/venv with monailabel==0.8.5 and the pins it needs beside it ("pydicom<3" "dicomweb-client<0.60"
#      "pynetdicom<3"; torch 2.14.1 and torchvision 0.29.1, which pip takes from the local wheels of these machines),
#      once (delete WORK_DIR/venv to reinstall);
#   2. with the project's environment (`python` on PATH, e.g. .venv), trains smoke-scale weights on a generated CT
#      phantom (rotation stage 2; transfer_segmentation fine-tuned from it) and packages both with
#      tools/package_bundle.py into WORK_DIR/app/model/ (the monaibundle app's local bundles);
#   3. starts `monailabel start_server` on them (its own process group; the datastore is the phantom with its labels),
#      calls /info, /infer and /train (then /infer again) for both bundles, and
#   4. stops the server by its process id.
# Everything it prints is also in WORK_DIR/monailabel_check.log; docs/monai_label.md shows a run.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mkdir -p "${1:-$REPO/.cache/monailabel_check}" && cd "${1:-$REPO/.cache/monailabel_check}" && pwd)"
VENV="$WORK/venv"
PORT="${MONAILABEL_PORT:-8765}"
URL="http://127.0.0.1:$PORT"
SSL_NAME=rotation_ct_ssl                 # no task word in the name: MONAI Label lists it as a segmentation model
SEG_NAME=phantom_ct_segmentation
LOG="$WORK/monailabel_check.log"
SERVER_PID=""
exec > >(tee "$LOG") 2>&1

say() { printf '\n== %s\n' "$*"; }
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    say "stopping the server (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID"
    for _ in $(seq 1 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
    kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    echo "server stopped"
  fi
}
trap stop_server EXIT

say "1. MONAI Label environment: $VENV"
if [[ ! -x "$VENV/bin/monailabel" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 monailabel==0.8.5 "pydicom<3" "dicomweb-client<0.60" "pynetdicom<3"
fi
"$VENV/bin/python" -c "import monailabel, monai, torch; print('monailabel', monailabel.__version__, '| monai', monai.__version__, '| torch', torch.__version__)"

say "2. weights and packages (project environment: $(command -v python))"
cd "$REPO"
python - "$WORK" "$SSL_NAME" "$SEG_NAME" <<'EOF'
import json, os, shutil, sys
from monai.bundle import ConfigWorkflow
from common.data import write_phantom_dataset
sys.path.insert(0, "tools")
from package_bundle import package

work, ssl_name, seg_name = sys.argv[1:4]
for folder in ("data", "weights", "app/model", "studies"):
    shutil.rmtree(os.path.join(work, folder), ignore_errors=True)
datalist = write_phantom_dataset(os.path.join(work, "data"), num_volumes=3, shape=(48, 48, 40))
data = {"dataset_dir": os.path.dirname(datalist), "datalist": datalist}

def run(bundle, names, **overrides):
    configs = os.path.join("bundles", bundle, "configs")
    wf = ConfigWorkflow(config_file=[os.path.join(configs, f"{n}.yaml") for n in names], workflow_type="train",
                        meta_file=os.path.join(configs, "metadata.json"), logging_file=os.path.join(configs, "logging.conf"),
                        bundle_root=os.path.join("bundles", bundle), **overrides)
    wf.initialize(); wf.run(); wf.finalize()

weights = os.path.join(work, "weights")
run("rotation", ["train", "stage2", "smoke"], output_dir=os.path.join(weights, "rotation"), handoff_components=[], **data)
classes = {"class_names": ["organ", "bone"], "source_labels": [[1], [2]]}
run("transfer_segmentation", ["train", "smoke"], output_dir=os.path.join(weights, "segmentation"), label_set="phantom",
    val_subjects=["phantom-002"], pretrained_bundle="bundles/rotation", pretrained_dir=os.path.join(weights, "rotation", "stage2"),
    **classes, **data)
package("bundles/rotation", os.path.join(work, "app", "model", ssl_name), weights=os.path.join(weights, "rotation", "stage2"), check=False)
package("bundles/transfer_segmentation", os.path.join(work, "app", "model", seg_name), weights=os.path.join(weights, "segmentation"),
        overrides=classes, check=False)
studies = os.path.join(work, "studies")  # MONAI Label's datastore: images, and their labels in labels/final
os.makedirs(os.path.join(studies, "labels", "final"))
base = os.path.dirname(datalist)
for entry in json.load(open(datalist))["labeled"]:
    name = os.path.basename(entry["image"])
    shutil.copy(os.path.join(base, entry["image"]), os.path.join(studies, name))
    shutil.copy(os.path.join(base, entry["label"]), os.path.join(studies, "labels", "final", name))
print("studies:", sorted(os.listdir(studies)))
EOF
APP="$WORK/app"
find "$VENV/monailabel/sample-apps/monaibundle" -mindepth 1 -maxdepth 1 ! -name model -exec cp -r {} "$APP/" \;

say "3. server: monailabel start_server --app $APP --studies $WORK/studies --conf models $SEG_NAME,$SSL_NAME"
cd "$WORK"
PATH="$VENV/bin:$PATH" BUNDLE_DOWNLOAD_SRC=github setsid "$VENV/bin/monailabel" start_server --app "$APP" --studies "$WORK/studies" \
  --conf models "$SEG_NAME,$SSL_NAME" --conf zoo_source github --conf sam2 false --conf preload false \
  --host 127.0.0.1 --port "$PORT" > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
echo "server pid $SERVER_PID (log: $WORK/server.log)"
for i in $(seq 1 180); do
  curl -sf "$URL/info/" > "$WORK/info.json" 2>/dev/null && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "the server exited:"; tail -50 "$WORK/server.log"; exit 1; fi
  sleep 2
done
[[ -s "$WORK/info.json" ]] || { echo "no /info after 360 s"; tail -50 "$WORK/server.log"; exit 1; }

say "/info"
"$VENV/bin/python" - "$WORK/info.json" <<'EOF'
import json, sys
info = json.load(open(sys.argv[1]))
print("name:", info.get("name"))
for name, model in info.get("models", {}).items():
    print(f"model {name}: type={model.get('type')} labels={model.get('labels')} dimension={model.get('dimension')}")
print("trainers:", sorted(info.get("trainers", {})))
EOF

infer() {  # model image
  local out="$WORK/infer_$1.nii.gz"
  local code
  code=$(curl -s -o "$out" -w "%{http_code}" -X POST "$URL/infer/$1?image=$2&output=image" -F 'params={"device": "cpu"}')
  echo "POST /infer/$1?image=$2 -> HTTP $code, $(stat -c %s "$out" 2>/dev/null || echo 0) bytes"
  [[ "$code" == 200 ]] || { cat "$out"; echo; return 1; }
  python -c "import nibabel as nib, numpy as np, sys; a = np.asarray(nib.load(sys.argv[1]).dataobj); print(f'  result {a.shape} {a.dtype} values {np.unique(a)[:6]}{\" ...\" if np.unique(a).size > 6 else \"\"} range [{a.min():.3g}, {a.max():.3g}]')" "$out"
}
train() {  # model
  local before after
  before=$(md5sum "$APP/model/$1/models/model.pt" | cut -c1-32)
  echo "POST /train/$1 (max_epochs 1, cpu): HTTP $(curl -s -o "$WORK/train_$1.json" -w "%{http_code}" -X POST "$URL/train/$1?run_sync=true" \
    -H 'Content-Type: application/json' -d '{"max_epochs": 1, "device": "cpu", "val_split": 0.34, "multi_gpu": false}')"
  head -c 400 "$WORK/train_$1.json"; echo
  curl -s "$URL/train/?check_if_running=false" | head -c 300; echo
  after=$(md5sum "$APP/model/$1/models/model.pt" | cut -c1-32)
  echo "  models/model.pt md5 $before -> $after ($([[ "$before" != "$after" ]] && echo replaced by the training || echo UNCHANGED))"
}

IMAGE=phantom_000
for model in "$SEG_NAME" "$SSL_NAME"; do
  say "/infer and /train: $model"
  infer "$model" "$IMAGE"
  train "$model"
  infer "$model" "$IMAGE"
done
say "server log (last lines)"
tail -15 "$WORK/server.log"
stop_server
SERVER_PID=""
say "done"

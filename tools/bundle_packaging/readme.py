"""The packaged bundle's ``docs/README.md``: the model zoo's README sections (``docs/readme_template.md`` of the
model zoo: Authors, Tags, Model Description, Data, Preprocessing, Performance, Additional Usage Steps, System
Configuration, Limitations, Citation Info, References), filled from the metadata and the packaged weights, followed by
the repository bundle's own README."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["SECTIONS", "zoo_readme", "monai_label_text"]

#: The model zoo README template's section headings, in order.
SECTIONS = (
    "Authors", "Tags", "Model Description", "Data", "Preprocessing", "Performance", "Additional Usage Steps",
    "System Configuration", "Limitations", "Citation Info", "References",
)  # fmt: skip


def monai_label_text(kind: str, name: str, stage: Any = None) -> str:
    """What MONAI Label does with a packaged bundle of this kind (``ssl`` or ``transfer``) and what it shows."""
    common = (
        f"Serve it as a local bundle of the `monaibundle` app: put (or symlink) this folder at "
        f"`<app>/model/{name}` and start `monailabel start_server --app <app> --studies <images> --conf models {name}` "
        "(`--conf zoo_source github --conf sam2 false` on a machine without internet). The folder name sets the task "
        "type MONAI Label shows: a name containing `segmentation` or `classification` gets that type, any other name "
        "is listed as a segmentation model. The repository's `docs/monai_label.md` has the full walk-through and "
        "`tools/monailabel_check.sh` runs it against a real server."
    )
    if kind == "transfer":
        return (
            common + "\n\n"
            "- **Infer** runs `configs/inference.yaml` (`network_def`, `preprocessing`, `inferer`, `postprocessing`) "
            "with `models/model.pt`; MONAI Label restores the result to the image's grid and returns it with the label "
            "names of `network_data_format.outputs.pred.channel_def`.\n"
            "- **Train** runs `configs/train.yaml` with MONAI Label's labelled images (`image`/`label`), its validation "
            "split, `max_epochs` and a `CheckpointLoader` of `models/model.pt` at `train#handlers` index 0; the network is "
            "first initialised from the embedded pretrained weights (`pretrained/`), then from `model.pt`. The best "
            "validation Dice (or the last epoch without validation data) is written to `models/model.pt`, which the "
            "next inference serves."
        )
    return (
        common + "\n\n"
        "A self-supervised bundle has no classes: its network restores images. How it is meant to be used from MONAI "
        "Label: its pretrained encoder (and decoder) initialise a **transfer bundle** (`transfer_segmentation` or "
        "`transfer_classification` in the repository, `pretrained_bundle`/`pretrained_dir`), which is fine-tuned on "
        "MONAI Label's labels and packaged with `tools/package_bundle.py`; that package embeds this bundle's network "
        "description and weights and is what annotators use.\n\n"
        "What MONAI Label does with this package itself:\n\n"
        "- **Infer** serves `models/model.pt` through `configs/inference.yaml`: the result is the *restored image* (float "
        "intensities in [0, 1], the input's intensity preset) on the input's grid. MONAI Label has no image-to-image "
        "task type, so it lists the bundle as a segmentation model and returns the restoration as the result file; "
        "`network_data_format.outputs.pred` is `type: image`, `format: magnitude` without `channel_def`, so no label "
        "name is offered, and a viewer that loads the result as a label map shows nothing meaningful. Use it to check "
        "what the network learnt (`/infer/<model>?output=image`), not to annotate.\n"
        f"- **Train** continues the self-supervised pretraining of the packaged stage ({stage}) on the datastore's "
        "images (labels are ignored; the proxy task makes its own targets): `configs/train.yaml` alone is that stage, "
        "started from `models/model.pt` by MONAI Label's `CheckpointLoader` (encoder and decoder; head and adversary "
        "start anew), in `models/stage<k>/`, which every run starts over (`overwrite: true`: MONAI Label cannot pass "
        "`--overwrite`, and a stale checkpoint of an earlier, longer run must not be resumed). At the end the new "
        "restorer is written to `models/model.pt` (`publish_model`), which the next inference serves. The stage "
        "overlays (`stage1.yaml`...) keep the repository's resumable behaviour (`overwrite: false`)."
    )


def _demote(markdown: str) -> str:
    """Headings one level deeper (the included README sits under a section of this one)."""
    return re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", markdown, flags=re.MULTILINE)


def zoo_readme(
    name: str,
    metadata: Mapping[str, Any],
    kind: str,
    weights: Mapping[str, Any],
    commands: str,
    source_readme: str | None,
    performance: str,
) -> str:
    """The packaged README (see the module docstring).

    Args:
        name: the packaged bundle's folder name.
        metadata: its ``metadata.json``.
        kind: ``ssl`` or ``transfer``.
        weights: what ``models/model.pt`` is (``source``, ``stage``, ``settings``...), shown as JSON.
        commands: markdown of the usage commands.
        source_readme: the repository bundle's README, or ``None``.
        performance: markdown of what the packaged run measured.
    """
    inputs = metadata["network_data_format"]["inputs"]
    image = next(iter(inputs.values()))
    tags = ["Self-Supervised" if kind == "ssl" else "Transfer learning", image.get("modality", "CT"), "3D", "MONAI bundle"]
    if "united_ssl" in metadata:
        tags.insert(1, str(metadata["united_ssl"].get("method", name)))
    references = metadata.get("references", [])
    preprocessing = {k: image[k] for k in ("orientation", "spacing", "intensity_preset", "patch_size") if k in image}
    lines = [
        f"# {metadata.get('name', name)}",
        "",
        "### **Authors**",
        metadata.get("authors", ""),
        "",
        "### **Tags**",
        ", ".join(tags),
        "",
        "## **Model Description**",
        metadata.get("description", ""),
        "",
        f"This folder is a self-contained MONAI bundle (version {metadata.get('version')}) written by "
        "`tools/package_bundle.py` of the United SSL bundles repository: it carries the code its configs import "
        "(`scripts/common`), so `python -m monai.bundle run ... --bundle_root <this folder>` works from any working "
        "directory with only the packages `configs/metadata.json` lists. `models/model.pt` is what inference serves; "
        "it is not committed (`large_files.yml`).",
        "",
        "#### **Packaged weights**",
        "```json",
        json.dumps(weights, indent=2),
        "```",
        "",
        "## **Data**",
        f"{metadata.get('data_source', '')}. Data types: {metadata.get('data_type', 'see metadata')}. "
        f"{metadata.get('image_classes', '')}. Licence terms: `docs/data_license.txt`.",
        "",
        "#### **Preprocessing**",
        "As recorded in `network_data_format` (the packaged defaults are those of the packaged weights): "
        + ", ".join(f"{k}: {v}" for k, v in preprocessing.items())
        + ".",
        "",
        "## **Performance**",
        performance,
        "",
        "## **Additional Usage Steps**",
        commands,
        "",
        "#### **MONAI Label**",
        monai_label_text(kind, name, weights.get("stage")),
        "",
        "## **System Configuration**",
        f"MONAI {metadata.get('monai_version')}, PyTorch {metadata.get('pytorch_version')}, NumPy "
        f"{metadata.get('numpy_version')}, and `required_packages_version` of the metadata. One GPU with mixed "
        "precision is the expected setting (`amp` is on whenever CUDA is available); the CPU works at small widths. "
        "Several GPUs or nodes: `configs/multi_gpu_train.yaml` under `torchrun` (the repository's `docs/multi_gpu.md`).",
        "",
        "## **Limitations**",
        f"{metadata.get('intended_use', '')}. This software has not been cleared or approved by any regulatory agency.",
        "",
        "## **Citation Info**",
        references[0] if references else "See References.",
        "",
        "## **References**",
        *[f"[{i}] {r}" for i, r in enumerate(references, 1)],
        "",
    ]
    if source_readme:
        lines += [
            "## **Repository README of this bundle**",
            "The bundle's README in the repository, for the method's details. Its commands use repository paths "
            "(`bundles/<name>/...`); in this package use the commands above.",
            "",
            _demote(source_readme.strip()),
            "",
        ]
    return "\n".join(lines)

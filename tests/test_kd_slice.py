"""A student cut from the teacher (make kd-slice): the cut itself, and the run on the smoke
profile."""

import json

import pytest
import torch
import torch.nn.functional as F

from pixel_utils.models.networks import NAFBlock, NAFNetUNet, teacher_slice_state
from pixel_utils.training import teacher_slice

KWARGS = {"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)}


def _trained_like(kwargs):
    """A NAFNet U-Net with every weight random (a fresh one has zero branch scales, which
    would hide a wrong cut)."""
    torch.manual_seed(0)
    model = NAFNetUNet(**kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model.eval()


def test_a_cut_at_the_teachers_width_is_the_teacher():
    teacher = _trained_like(KWARGS)
    state = teacher_slice_state(teacher.state_dict(), KWARGS, KWARGS["width"])
    assert all(torch.equal(state[k], v) for k, v in teacher.state_dict().items())


def test_a_narrower_cut_loads_into_the_narrower_network():
    teacher = _trained_like(KWARGS)
    narrow = NAFNetUNet(**(KWARGS | {"width": 4}))
    narrow.load_state_dict(teacher_slice_state(teacher.state_dict(), KWARGS, 4))  # strict
    assert narrow(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="between 1 and the teacher's 8: 12"):
        teacher_slice_state(teacher.state_dict(), KWARGS, 12)
    with pytest.raises(ValueError, match="missing from a NAFNet"):
        teacher_slice_state({}, KWARGS, 4)


def test_a_cut_gate_pairs_the_teachers_channels():
    # On inputs whose dropped channels are zero, the cut block's gate gives the teacher's
    # first channels: each half of a gated layer kept its own first channels.
    teacher = _trained_like(KWARGS)
    narrow = NAFNetUNet(**(KWARGS | {"width": 4}))
    narrow.load_state_dict(teacher_slice_state(teacher.state_dict(), KWARGS, 4))
    for block, cut in ((teacher.encoders[0][0], narrow.encoders[0][0]),
                       (teacher.middle[0], narrow.middle[0])):  # fmt: skip
        assert isinstance(block, NAFBlock)
        n = cut.norm1.weight.numel()
        x = torch.randn(1, n, 6, 6)
        padded = F.pad(x, (0, 0, 0, 0, 0, n))
        with torch.no_grad():
            ours = cut.gate(cut.conv2(cut.conv1(x)))
            theirs = block.gate(block.conv2(block.conv1(padded)))[:, :n]
            assert torch.allclose(ours, theirs, atol=1e-4)
            theirs = block.gate(block.conv4(padded))[:, :n]
            assert torch.allclose(cut.gate(cut.conv4(x)), theirs, atol=1e-4)


def test_a_cut_way_up_keeps_the_teachers_first_channels():
    teacher = _trained_like(KWARGS)
    cut = NAFNetUNet(**(KWARGS | {"width": 4}))
    cut.load_state_dict(teacher_slice_state(teacher.state_dict(), KWARGS, 4))
    x = torch.randn(1, 16, 5, 5)  # the middle: 32 channels in the teacher, 16 in the cut
    with torch.no_grad():
        theirs = teacher.ups[0](F.pad(x, (0, 0, 0, 0, 0, 16)))
        assert torch.allclose(cut.ups[0](x), theirs[:, :8], atol=1e-5)
        y = torch.randn(1, 4, 6, 6)  # full resolution: 8 channels in the teacher, 4 in the cut
        theirs = teacher.downs[0](F.pad(y, (0, 0, 0, 0, 0, 4)))
        assert torch.allclose(cut.downs[0](y), theirs[:, :8], atol=1e-5)


def test_a_network_refuses_another_students_start(tmp_path, monkeypatch):
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.training import stages

    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    profile = resolve_profile("smoke")
    setup = stages.DistillSetup(None, [], tmp_path / "cache.pt", {})
    network = stages.StudentNetwork("slice4", "nafnet", KWARGS | {"width": 4})
    with pytest.raises(ValueError, match="its first weights are its own"):
        stages.train_student(profile, setup, distill=False, network=network,
                             grown_from=tmp_path / "x.pt")  # fmt: skip


def test_kd_slice_trains_four_students_per_seed_and_records_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    result = teacher_slice.run_teacher_slice("smoke", seeds=2, cases=("gauss3", "no_blur"),
                                             width=4, out_dir=tmp_path / "fig")  # fmt: skip
    saved = json.loads((tmp_path / "fig" / "kd_slice.json").read_text())
    assert (tmp_path / "fig" / "kd_slice.png").stat().st_size > 0
    assert list(saved["gain_db"]) == list(teacher_slice.ARMS)
    assert saved["width"] == 4 and saved["teacher_width"] == 24
    from pixel_utils.training.loop import load_checkpoint

    ckpts = {p.name for p in (tmp_path / "data").rglob("student_*.pt")}
    slices = {f"student_{kd}_slice4{cut}{s}.pt" for kd in ("distilled", "scratch")
              for cut in ("", "_cut") for s in ("", "_s1")}  # fmt: skip
    reports = {f"student_{arm}{s}.pt" for arm in ("distilled", "scratch") for s in ("", "_s1")}
    assert ckpts == slices | reports
    # The fine-tuning rate's pair is another run, in its own folder, at that rate.
    fine = [p for p in (tmp_path / "data").rglob("student_*_slice4_cut*.pt")
            if p.parent.parent.name != "smoke"]  # fmt: skip
    assert len(fine) == 4 and all(p.parent.parent.name.startswith("smoke-") for p in fine)
    assert {load_checkpoint(p)["config"]["lr"] for p in fine} == {teacher_slice.FINE_TUNE_LR}
    # The cut students started from the teacher's weights, and say so in their key.
    from pixel_utils.app.pretrained import shipped_path
    from pixel_utils.artefacts import sha256_file

    cut = load_checkpoint(tmp_path / "data" / "smoke" / "checkpoints"
                          / "student_scratch_slice4_cut.pt")  # fmt: skip
    plain = load_checkpoint(tmp_path / "data" / "smoke" / "checkpoints"
                            / "student_scratch_slice4.pt")  # fmt: skip
    assert cut["data"]["cut_from"] == sha256_file(shipped_path("teacher"))
    assert "cut_from" not in plain["data"] and cut["model_kwargs"]["width"] == 4
    # Each effect is the paired difference of the gains it names.
    for effect in saved["effects"].values():
        gap = (saved["gain_db"][effect["arm"]]["gauss3"]
               - saved["gain_db"][effect["against"]]["gauss3"])  # fmt: skip
        assert gap == pytest.approx(effect["by_case"]["gauss3"]["mean_db"])
        assert effect["by_case"]["gauss3"]["seeds"] == 2
    assert {"git_commit", "pipeline_sha256", "utc"} <= set(saved["provenance"])
    assert saved["command"] == ("python -m pixel_utils.training.teacher_slice --profile smoke "
                                "--seeds 2 --cases gauss3,no_blur --width 4")  # fmt: skip
    text = teacher_slice.kd_slice_findings(result)
    assert saved["command"] in text and "Cut from the teacher, distilled" in text
    both = saved["effects"]["both"]["by_case"]["gauss3"]
    assert f"{both['mean_db']:+.3f} dB" in text and "`no_blur`" in text


def _effect(mean, half):
    return {"by_case": {"gauss3": {"mean_db": mean, "ci95_over_images": half,
                                   "ci_excludes_zero": abs(mean) > half}}}  # fmt: skip


def test_lesson_says_the_labels_paid_only_at_03_db_with_an_interval_excluding_zero():
    def result(labels):
        return {"cases": ["gauss3"], "width": 8, "teacher_width": 24, "steps": 600, "seeds": 3,
                "effects": {"labels": labels, "labels_from_teacher": _effect(0.05, 0.04),
                            "weights": _effect(0.4, 0.1), "both": _effect(0.45, 0.1)}}  # fmt: skip

    short = teacher_slice.kd_slice_lesson(result(_effect(0.25, 0.1)))
    assert "did not get #13's 0.3 dB" in short and "+0.25 ± 0.10 dB from a random start" in short
    assert "weights alone gave +0.40 ± 0.10 dB" in short and "Its weights did" in short
    weak = result(_effect(0.25, 0.1))
    weak["effects"]["weights"] = _effect(0.4, 0.5)
    assert "Its weights did" not in teacher_slice.kd_slice_lesson(weak)
    assert "did not get" in teacher_slice.kd_slice_lesson(result(_effect(0.35, 0.4)))
    assert "paid #13's 0.3 dB" in teacher_slice.kd_slice_lesson(result(_effect(0.35, 0.1)))
    # A run with the fine-tuning rate's pair names it, and its labels can pay too.
    fine = result(_effect(0.25, 0.1)) | {"fine_tune_lr": 5e-4}
    fine["effects"]["labels_fine_lr"] = _effect(0.02, 0.03)
    text = teacher_slice.kd_slice_lesson(fine)
    assert "(+0.02 ± 0.03 dB at a fine-tuning rate, 0.0005)" in text and "did not get" in text
    fine["effects"]["labels_fine_lr"] = _effect(0.32, 0.1)
    assert "paid #13's 0.3 dB" in teacher_slice.kd_slice_lesson(fine)


def test_grouped_bars_put_each_series_side_by_side_with_its_errors():
    import matplotlib.pyplot as plt

    from pixel_utils.report.viz import grouped_bars

    fig, ax = plt.subplots()
    grouped_bars(ax, ["a", "b"], {"x": [1.0, 2.0], "y": [3.0, -1.0]}, {"y": [0.5, 0.25]})
    from matplotlib.container import BarContainer

    bars = {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}
    centres = {k: [p.get_x() + p.get_width() / 2 for p in c.patches] for k, c in bars.items()}
    assert centres["x"] == pytest.approx([-0.2, 0.8]) and centres["y"] == pytest.approx([0.2, 1.2])
    assert [p.get_height() for p in bars["y"].patches] == [3.0, -1.0]
    assert bars["x"].errorbar is None and bars["y"].errorbar is not None
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    plt.close(fig)

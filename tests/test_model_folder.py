"""The model folder's one writer and one reader, as a checkpoint, a saved model and a guide use them."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

from protein_sedd.errors import UserError
from protein_sedd.guidance.guide import Guide, load_guide
from protein_sedd.guidance.network import GuideConfig, GuideNet
from protein_sedd.model.folder import CONFIG, WEIGHTS, load_model_folder, save_model_folder
from protein_sedd.model.sources import bundled_checkpoint


def _bundled_copy(tmp_path):
    """(a model folder holding the bundled model, its config): a copy to damage."""
    network, config = load_model_folder(bundled_checkpoint())
    folder = tmp_path / "m"
    folder.mkdir()
    save_model_folder(folder, network, config)
    return folder, config


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("atomic_files", [False, True])
def test_a_saved_folder_loads_back_the_same_weights_and_config_with_shareable_files(tmp_path, atomic_files):
    network, config = load_model_folder(bundled_checkpoint())
    folder = tmp_path / "copy"
    folder.mkdir()
    save_model_folder(folder, network, config, atomic_files=atomic_files)
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG, WEIGHTS]  # no temporary file left
    again, config_again = load_model_folder(folder)
    assert config_again == config
    saved, loaded = network.state_dict(), again.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert not again.training
    umask = os.umask(0)
    os.umask(umask)
    assert _mode(folder / WEIGHTS) == _mode(folder / CONFIG) == 0o666 & ~umask  # safetensors' own is 0600


def test_diverged_or_mismatched_weights_are_refused_naming_the_file(tmp_path):
    folder, config = _bundled_copy(tmp_path)
    weights = load_file(folder / WEIGHTS)
    weights["embedding.weight"][0, 0] = float("nan")
    save_file(weights, str(folder / WEIGHTS))
    message = f"{folder / WEIGHTS}: weight 'embedding.weight' holds NaN or infinite values; unusable"
    with pytest.raises(UserError, match="^" + message.replace(".", r"\.") + "$"):
        load_model_folder(folder)
    del weights["embedding.weight"]
    save_file(weights, str(folder / WEIGHTS))
    with pytest.raises(UserError, match=r"weights do not match config\.yaml \(missing 'embedding\.weight'"):
        load_model_folder(folder)
    (folder / WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="unreadable safetensors file"):
        load_model_folder(folder)


def test_a_guide_stores_its_weights_the_same_way_and_its_errors_name_its_own_files(tmp_path):
    guide = Guide(GuideNet(GuideConfig(n_outputs=2)), "classify", classes=[0.0, 1.0])
    folder = guide.save(tmp_path / "guide")
    again = load_guide(folder)
    saved, loaded = guide.network.state_dict(), again.network.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    weights = load_file(folder / "guide.safetensors")
    first = next(iter(weights))
    weights[first].view(-1)[0] = float("inf")
    save_file(weights, str(folder / "guide.safetensors"))
    with pytest.raises(
        UserError, match=f"weight '{first}' holds NaN or infinite values; unusable; train the guide"
    ):
        load_guide(folder)
    del weights[first]
    save_file(weights, str(folder / "guide.safetensors"))
    with pytest.raises(UserError, match=r"weights do not match guide\.json"):  # not the model's config.yaml
        load_guide(folder)


def test_a_config_declaring_billions_of_parameters_fails_on_the_weights_header_without_allocating(
    tmp_path, monkeypatch
):
    from omegaconf import OmegaConf

    import protein_sedd.model as model_module

    folder, config = _bundled_copy(tmp_path)
    # 8e8 parameters (3.2 GB if built; the same path held 9.7e9, under the config's 1e10 bound)
    huge = OmegaConf.merge(config, {"model": {"hidden_size": 4096, "n_heads": 32}})
    OmegaConf.save(huge, folder / CONFIG)
    built = []  # the device each network was built on: only the meta device (no memory) may see this one

    class Recording(model_module.DDiT):
        def __init__(self, config):
            built.append(torch.empty(0).device.type)
            super().__init__(config)

    monkeypatch.setattr(model_module, "DDiT", Recording)
    with pytest.raises(UserError) as refused:
        load_model_folder(folder)
    assert str(refused.value) == (
        f"{folder / WEIGHTS}: weights do not match config.yaml: 'embedding.weight' has shape (23, 128), "
        "the config implies (23, 4096)"
    )
    assert built == ["meta"]


def test_a_weight_stored_as_integers_is_refused(tmp_path):
    folder, config = _bundled_copy(tmp_path)
    weights = load_file(folder / WEIGHTS)
    weights["final.linear.bias"] = weights["final.linear.bias"].to(torch.int64)  # same name and shape
    save_file(weights, str(folder / WEIGHTS))
    with pytest.raises(UserError) as refused:
        load_model_folder(folder)
    assert str(refused.value) == (
        f"{folder / WEIGHTS}: weight 'final.linear.bias' is stored as I64, not floating point; unusable"
    )

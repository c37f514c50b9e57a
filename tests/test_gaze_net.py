import numpy as np
import pytest
import torch
import torch.nn.functional as F

from maskpurify.errors import UserError
from maskpurify.nets.gaze import GazeNetConfig, build_gaze_net, load_gaze_net, predict_gaze, save_gaze_net


@pytest.mark.parametrize("arch", ["lenet", "resnet_preact"])
def test_shapes_and_grey_input(arch):
    torch.manual_seed(0)
    model = build_gaze_net(GazeNetConfig(arch=arch)).eval()
    x = torch.rand(4, 3, 36, 60)
    out = model(x)
    assert out.shape == (4, 2)
    grey = torch.rand(4, 1, 36, 60)
    assert torch.allclose(model(grey.expand(-1, 3, -1, -1)), model(grey), atol=1e-5)
    assert model(torch.rand(2, 3, 72, 120)).shape == (2, 2)  # other sizes are resized inside


def test_standardisation_ignores_global_brightness_and_contrast():
    model = build_gaze_net(GazeNetConfig()).eval()
    x = torch.rand(3, 3, 36, 60) * 0.5
    assert torch.allclose(model(x), model(x * 1.6 + 0.1), atol=1e-3)


def test_head_pose_input_is_required_and_used():
    torch.manual_seed(0)
    model = build_gaze_net(GazeNetConfig(arch="resnet_preact", use_head_pose=True)).eval()
    torch.nn.init.normal_(model.fc.weight)
    x = torch.rand(2, 3, 36, 60)
    with pytest.raises(ValueError, match="head_pose"):
        model(x)
    a = model(x, torch.zeros(2, 2))
    b = model(x, torch.ones(2, 2))
    assert not torch.allclose(a, b)


def test_rgb_model_and_bad_config():
    assert build_gaze_net({"grey": False, "arch": "lenet"})(torch.rand(2, 3, 36, 60)).shape == (2, 2)
    with pytest.raises(UserError):
        build_gaze_net({"arch": "vgg"})
    with pytest.raises(UserError):
        build_gaze_net({"arch": "resnet_preact", "depth": 9})


@pytest.mark.parametrize("arch", ["lenet", "resnet_preact"])
def test_checkpoint_round_trip(tmp_path, arch):
    torch.manual_seed(1)
    model = build_gaze_net(GazeNetConfig(arch=arch, use_head_pose=True))
    model.train()
    model(torch.rand(8, 3, 36, 60), torch.rand(8, 2))  # move BN running stats
    model.eval()
    save_gaze_net(tmp_path / "gaze", model, {"note": "x"})
    again = load_gaze_net(tmp_path / "gaze.safetensors")
    x, pose = torch.rand(5, 3, 36, 60), torch.rand(5, 2)
    assert torch.equal(model(x, pose), again(x, pose))
    assert again.config == model.config
    images = (torch.rand(5, 36, 60, 3) * 255).to(torch.uint8)
    pred = predict_gaze(again, images, pose, batch_size=2)
    assert torch.allclose(pred, again(images.permute(0, 3, 1, 2).float() / 255, pose), atol=1e-6)


def test_loading_a_wrong_checkpoint_is_a_user_error(tmp_path):
    from maskpurify.checkpoints import save_checkpoint

    save_checkpoint(tmp_path / "other", {"w": torch.zeros(1)}, {"kind": "purifier"})
    with pytest.raises(UserError, match="not a gaze"):
        load_gaze_net(tmp_path / "other")
    with pytest.raises(UserError, match="no such checkpoint"):
        load_gaze_net(tmp_path / "missing")


def test_lenet_conv_widths_round_trip(tmp_path):
    net = build_gaze_net(GazeNetConfig(hidden=16, conv_channels=(8, 12), conv_bn=True))
    assert net.conv1.out_channels == 8 and net.conv2.out_channels == 12 and net.bn2.num_features == 12
    net.train()(torch.rand(4, 3, 36, 60))  # moves the batch-norm statistics, so the round trip must carry them
    save_gaze_net(tmp_path / "g", net)
    loaded = load_gaze_net(tmp_path / "g")
    assert loaded.config.conv_channels == (8, 12)
    x = torch.rand(2, 3, 36, 60)
    torch.testing.assert_close(loaded(x), net.eval()(x))


@pytest.mark.parametrize("size", [(32, 56), (13, 27)])
def test_fast_max_pool_matches_max_pool2d_with_and_without_gradients(size):
    from maskpurify.nets.gaze import _max_pool2

    x = torch.randn(2, 3, *size)
    x[0, 0, :4, :4] = 0.5  # tied windows
    with torch.no_grad():
        assert torch.equal(_max_pool2(x), F.max_pool2d(x, 2))
    x.requires_grad_(True)
    _max_pool2(x).sum().backward()
    expected = torch.autograd.grad(F.max_pool2d(x, 2).sum(), x)[0]
    assert torch.equal(x.grad, expected)


def test_label_maps_match_label_image():
    from maskpurify.masks import label_image
    from maskpurify.nets.gaze import label_maps

    mask = np.random.default_rng(0).integers(0, 4, (2, 5, 7)).astype(np.uint8)
    expected = torch.from_numpy(label_image(mask)).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(label_maps(torch.from_numpy(mask)), expected)

import pytest

from tests.support.fake_data import lfw_rows, masked_rows, partial_rows, save


@pytest.fixture
def lfw_base():
    """60 identities with 4 images and 30 with one: 270 images."""
    return lfw_rows([4] * 60 + [1] * 30)


@pytest.fixture
def lfw(tmp_path, lfw_base):
    return save(tmp_path / "lfw", lfw_base, "lfw")


@pytest.fixture
def masked(tmp_path, lfw_base):
    return save(tmp_path / "masked", masked_rows(lfw_base), "lfw-masked")


@pytest.fixture
def partial(tmp_path, lfw_base):
    return save(tmp_path / "partial", partial_rows(lfw_base, regions=("Nose", "Mouth"), factors=(0.3, 0.5)),
                "lfw-partial")


@pytest.fixture
def small_base():
    """12 identities with 3 images: small enough to write the image files."""
    return lfw_rows([3] * 12)


@pytest.fixture
def lfw_files(tmp_path, small_base):
    return save(tmp_path / "lfw_files", small_base, "lfw-small", images=True)


@pytest.fixture
def masked_files(tmp_path, small_base):
    return save(tmp_path / "masked_files", masked_rows(small_base, ("cloth",)), "lfw-small-masked", images=True)

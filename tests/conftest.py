import pytest
import torch

# Every tensor test runs on the CPU, and again on CUDA when this machine has it.
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason="no CUDA device here: the CUDA run is skipped")),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param

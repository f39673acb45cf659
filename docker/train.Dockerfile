# GPU training: `python -m featnet_tf.train` with MirroredStrategy over all
# visible GPUs, on the official TensorFlow GPU image of the pinned version.
#
#   docker build -f docker/train.Dockerfile -t featnet-train .
#   docker run --gpus all -v /data:/data featnet-train \
#       --experiment featnet --data_dir /data/criteo_prep --run_dir /data/runs/featnet_criteo
FROM tensorflow/tensorflow:2.21.0-gpu

WORKDIR /opt/featnet_tf
COPY requirements.txt requirements.lock setup.py pyproject.toml README.md ./
# The image ships TensorFlow already; the lock pins everything else.
RUN python -m pip install --no-cache-dir -r requirements.txt -c requirements.lock
COPY featnet_tf featnet_tf
COPY pipelines pipelines
COPY serving serving
RUN python -m pip install --no-cache-dir --no-deps .

ENTRYPOINT ["python", "-m", "featnet_tf.train"]

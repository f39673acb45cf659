# TensorFlow Serving for featnet_tf exports, on the official image whose
# version matches tensorflow-serving-api (2.19.1 in requirements.txt).
#
#   docker build -f docker/serving.Dockerfile --build-arg EXPORT_BASE=runs/featnet_criteo/export -t featnet-serving .
#   docker run -p 8500:8500 featnet-serving
FROM tensorflow/serving:2.19.1

ARG EXPORT_BASE=export
# Versioned SavedModels: /models/featnet/<version>/saved_model.pb
COPY ${EXPORT_BASE} /models/featnet
COPY docker/models.config docker/batching_parameters.txt docker/monitoring.config /config/

EXPOSE 8500 8501
ENTRYPOINT ["tensorflow_model_server", \
    "--port=8500", \
    "--rest_api_port=8501", \
    "--model_config_file=/config/models.config", \
    "--model_config_file_poll_wait_seconds=60", \
    "--file_system_poll_wait_seconds=5", \
    "--enable_batching=true", \
    "--batching_parameters_file=/config/batching_parameters.txt", \
    "--monitoring_config_file=/config/monitoring.config", \
    "--enable_model_warmup=true"]

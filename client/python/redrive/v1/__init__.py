# Generated gRPC stubs of proto/redrive/v1 (protoc 3.21 + grpc_python_plugin
# 1.51), checked in by client/python/stubs.sh; ctest python_stubs_drift_test
# fails when they differ from what the build's protoc generates.

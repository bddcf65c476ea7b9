"""Our own CRIU image decoder (protobuf wire format + field tables from CRIU's images/*.proto)."""

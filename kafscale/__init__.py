"""Kafscale: a Kafka-compatible broker on S3 and etcd with stateless brokers."""
__version__ = "0.1.0"

"""Helpers the tests share (importable as ``tests.support``): makers of real files and
starters of real servers. Each helper module has one job."""

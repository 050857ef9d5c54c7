import pytest
def test_a(server): pass
def test_b(server): pass
def test_c(sqlite_server): pass

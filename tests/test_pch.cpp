// Empty: the test_pch target exists for its precompiled header (see CMakeLists.txt).

# The deployment manifests parse and agree with the image (pytest + PyYAML).
add_test(NAME deploy_manifests
  COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_CURRENT_SOURCE_DIR}/deploy/test_manifests.py)

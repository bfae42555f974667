# Release tasks. Meson builds and tests trstctl (scripts/test); these targets only call the
# scripts that package it.
#
#   make image                                  scripts/build-image -> build/image/
#   make airgap-bundle VERSION=0.1.0 [IMAGE=...] [KEY=...] [OUT_DIR=dist/airgap]
.PHONY: image airgap-bundle help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

image: ## Build the release image with buildah (scripts/build-image)
	@scripts/build-image

airgap-bundle: ## Build the offline install bundle from a signed image (requires VERSION)
	@KEY='$(KEY)' OUT_DIR='$(OUT_DIR)' scripts/airgap-bundle '$(VERSION)' $(IMAGE)

# Thin wrapper over scripts/: the README's two quick-start commands.
.PHONY: all build test demo asan clean
all: build
build:
	./scripts/build.sh
test:
	./scripts/test.sh
demo:
	./scripts/demo.sh
asan:
	BUILD_DIR=build-asan ./scripts/test.sh -DRLFT_SANITIZE=ON -DRLFT_CUDA=OFF -DRLFT_BUILD_BENCH=OFF
clean:
	rm -rf build build-asan

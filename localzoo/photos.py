"""Sample photos for the lab (CC0/public-domain photos bundled in scikit-image's wheel).

``python -m localzoo.photos DIR`` writes chelsea.jpg, coffee.jpg, astronaut.jpg and
rocket.jpg into DIR (JPEG quality 95); files already holding the same bytes are left alone.
"""
import argparse
import os
import sys
import tempfile

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
JPEG_QUALITY = 95


def encode_photo(name):
    """JPEG bytes of the scikit-image sample ``name``."""
    if name not in PHOTOS:
        raise ValueError("unknown photo %r: expected one of %s" % (name, ", ".join(PHOTOS)))
    import cv2
    import skimage.data

    rgb = getattr(skimage.data, name)()
    # scikit-image gives RGB; OpenCV writes BGR.
    ok, data = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("cannot encode photo %s as JPEG" % name)
    return data.tobytes()


def _write_atomically(path, data):
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_photos(directory):
    """Write the sample photos into ``directory``; return {name: (path, written?)}."""
    directory = os.path.abspath(str(directory))
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError("photo directory %s exists and is not a directory" % directory)
    os.makedirs(directory, exist_ok=True)
    result = {}
    for name in PHOTOS:
        path = os.path.join(directory, name + ".jpg")
        data = encode_photo(name)
        try:
            with open(path, "rb") as f:
                same = f.read() == data
        except FileNotFoundError:
            same = False
        if not same:
            _write_atomically(path, data)
        result[name] = (path, not same)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m localzoo.photos", description=__doc__.split("\n")[0])
    parser.add_argument("directory", help="folder to write the sample photos into")
    args = parser.parse_args(argv)
    try:
        written = write_photos(args.directory)
    except (ValueError, OSError, RuntimeError) as exc:
        print("localzoo.photos: %s" % exc, file=sys.stderr)
        return 1
    fresh = [n for n, (_, w) in written.items() if w]
    print("photos in %s: %s (%s)" % (
        os.path.abspath(args.directory), ", ".join(n + ".jpg" for n in PHOTOS),
        "wrote " + ", ".join(fresh) if fresh else "already up to date"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

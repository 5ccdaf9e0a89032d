"""Copying a GGUF with changes, for the scripts that derive test models
from the default one (a relabelled architecture, no chat template, split
parts): every key and tensor as they are unless the caller says otherwise."""
import gguf


def copy(src_path, out_path, arch=None, rename=None, drop=(), extra=(), split_max_tensors=0):
    """Writes `src_path` to `out_path`: under architecture `arch` (default:
    its own), keys renamed by `rename`, those in `drop` left out, `extra`
    (key, value, GGUFValueType) added, in parts of `split_max_tensors`."""
    src = gguf.GGUFReader(src_path)
    own = bytes(src.fields["general.architecture"].parts[-1]).decode()
    w = gguf.GGUFWriter(out_path, arch or own, split_max_tensors=split_max_tensors)
    for key, field in src.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in drop:
            continue
        name = rename(key) if rename else key
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_array(name, field.contents())
        else:
            w.add_key_value(name, field.contents(), vtype)
    for key, value, vtype in extra:
        w.add_key_value(key, value, vtype)
    for t in src.tensors:
        w.add_tensor(t.name, t.data, raw_shape=t.data.shape, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return src

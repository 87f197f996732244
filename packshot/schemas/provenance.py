"""Provenance: how a generated image says so in its own metadata (IPTC DigitalSourceType in XMP).

Google Merchant Center asks that images made with generative AI keep this metadata; the export stage
writes it and the validator checks it."""

from __future__ import annotations

AI_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

_XMP_TEMPLATE = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    Iptc4xmpExt:DigitalSourceType="{source}"
    xmp:CreatorTool="packshot"/>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def provenance_xmp() -> bytes:
    """XMP packet marking an image as made by a generative model (IPTC DigitalSourceType)."""
    return _XMP_TEMPLATE.format(source=AI_SOURCE_TYPE).encode("utf-8")

"""The report templates a new installation starts with (managers edit them as data afterwards).

Frozen data of migration m009b: what it inserted on the day it was written. Edit the templates
of an installation as data (the template editor), or with a new migration; never here.

Normal texts follow the wording Chinese county imaging departments commonly use; each template
also carries macros: short normal/abnormal phrases a reader inserts with one click.
"""

from __future__ import annotations

DEFAULT_TEMPLATES: list[dict[str, object]] = [
    {
        "name": "颅脑CT平扫 / CT head (non-contrast)",
        "modality": "CT",
        "body_part": "HEAD",
        "findings": (
            "脑实质内未见异常密度影，灰白质分界清楚。脑室系统大小、形态正常，脑沟、脑裂、脑池"
            "未见增宽。中线结构居中。颅骨骨质未见异常。"
        ),
        "impression": "颅脑CT平扫未见明显异常。",
        "recommendation": "",
        "macros": [
            {
                "label": "无出血 / no haemorrhage",
                "field": "impression",
                "text": "未见颅内出血征象。",
            },
            {
                "label": "急性脑梗死 / acute infarct",
                "field": "findings",
                "text": "左侧大脑中动脉供血区见片状低密度影，边界模糊，考虑急性期脑梗死可能。",
            },
            {
                "label": "建议CTA / CTA advised",
                "field": "recommendation",
                "text": "建议行头颈部CTA检查，并结合临床。",
            },
        ],
    },
    {
        "name": "胸部正位片 / Chest radiograph (PA)",
        "modality": "CR",
        "body_part": "CHEST",
        "findings": (
            "两肺纹理清晰，未见明确实变影。两肺门影不大。心影大小、形态未见异常。两侧膈面光滑，"
            "肋膈角锐利。"
        ),
        "impression": "胸部正位片未见明显异常。",
        "recommendation": "",
        "macros": [
            {
                "label": "肺炎 / pneumonia",
                "field": "findings",
                "text": "右下肺野见斑片状模糊影，考虑炎症。",
            },
            {
                "label": "复查 / follow-up",
                "field": "recommendation",
                "text": "建议抗感染治疗后2周复查。",
            },
        ],
    },
    {
        "name": "胸部CT平扫 / CT chest (non-contrast)",
        "modality": "CT",
        "body_part": "CHEST",
        "findings": (
            "两肺野透亮度正常，未见实变及结节影。气管及主支气管通畅。纵隔内未见肿大淋巴结。"
            "心脏大小正常，未见心包积液。两侧胸腔未见积液。"
        ),
        "impression": "胸部CT平扫未见明显异常。",
        "recommendation": "",
        "macros": [
            {
                "label": "肺结节 / nodule",
                "field": "findings",
                "text": "右肺上叶见一实性结节，直径约6 mm，边界清楚。",
            },
            {
                "label": "结节随访 / nodule follow-up",
                "field": "recommendation",
                "text": "建议12个月后低剂量CT复查。",
            },
        ],
    },
    {
        "name": "腹部超声 / Abdominal ultrasound",
        "modality": "US",
        "body_part": "ABDOMEN",
        "findings": (
            "肝脏形态大小正常，包膜光整，实质回声均匀。胆囊大小正常，壁光滑，腔内未见异常回声。"
            "胰腺、脾脏未见异常。双肾大小形态正常，集合系统未见分离。"
        ),
        "impression": "腹部超声未见明显异常。",
        "recommendation": "",
        "macros": [],
    },
    {
        "name": "通用 / General",
        "modality": "",
        "body_part": "",
        "findings": "",
        "impression": "",
        "recommendation": "",
        "macros": [
            {
                "label": "图像质量欠佳 / poor images",
                "field": "recommendation",
                "text": "图像质量欠佳，建议必要时复查。",
            },
            {
                "label": "上转 / refer up",
                "field": "recommendation",
                "text": "建议转上级医院进一步诊治。",
            },
        ],
    },
]
